"""Event contracts v1: the only shapes that cross the Kafka boundary.

The JSON Schema files in ``schemas/`` are generated from these models
(``python -m sculptsvc.schemas write``); a test fails when they drift.

Rules every event follows:
- ``event_id`` is deterministic for the events this service emits (uuid5 of order id,
  revision, event type and state), so a consumer can de-duplicate on it.
- the Kafka key is the ``order_id`` on every topic, so one order stays in one partition.
- artifacts travel by claim check (``ArtifactRef``), never inline.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from mold.spec import SIZE_MM_DEFAULT, WALL_MM_DEFAULT
from sculptsvc.options import (
    PARTING_DEFAULT,
    SEED_MAX,
    HexColor,
    Mode,
    Parting,
    ReliefDepth,
    Seed,
    SizeMm,
    Smoothing,
    SubjectHint,
    Thickness,
    WallMm,
    color_problem,
)

SCHEMA_VERSION = 1
EVENT_NAMESPACE = uuid.UUID("7d0c7c55-2f1e-4d0e-9a51-5c0f8f5b9e21")

OrderId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
    Field(
        description="Shop order id: letters, digits, '_' and '-', 1 to 64 characters; "
        "it names files and Kafka keys, so nothing else is allowed.",
        examples=["ord-2026-000123"],
    ),
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def utc_now() -> datetime:
    return datetime.now(UTC)


def deterministic_event_id(*parts: object) -> uuid.UUID:
    """Same order, revision and outcome -> same event id, across retries, restarts and replays."""
    return uuid.uuid5(EVENT_NAMESPACE, "/".join(str(p) for p in parts))


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: Literal[1] = SCHEMA_VERSION
    order_id: OrderId
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str = Field(
        "",
        max_length=128,
        description="Id that ties together every event of one order across systems; "
        "the service copies it from the OrderPlaced event to everything it emits.",
    )


# --- OrderPlaced ------------------------------------------------------------------------

ImageMediaType = Literal[
    "image/png", "image/jpeg", "image/webp", "image/avif", "image/heic", "image/heif"
]
"""What a shop may send (``imaging.ALLOWED_FORMATS`` decodes each; HEIC is what phones
take by default). The decoder reads the bytes' own format; this names it for the record."""


class InlineImage(BaseModel):
    """An image sent inside the event. Mind Kafka's 1 MiB message limit: about 700 kB of
    image fits once base64-encoded; send larger pictures by URI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["inline"] = "inline"
    media_type: ImageMediaType
    data_base64: str = Field(min_length=4, description="Standard base64 of the image file.")

    def decoded(self) -> bytes:
        return base64.b64decode(self.data_base64, validate=True)

    @model_validator(mode="after")
    def _check_base64(self) -> InlineImage:
        try:
            base64.b64decode(self.data_base64, validate=True)
        except ValueError as exc:
            raise ValueError(f"data_base64 is not valid base64: {exc}") from None
        return self


class UriImage(BaseModel):
    """An image the service fetches; only schemes and hosts allowed in settings are read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["uri"] = "uri"
    uri: AnyUrl
    media_type: ImageMediaType | None = None


class MoldMaterial(StrEnum):
    """What the factory prints or machines the mold from."""

    pla = "pla"
    petg = "petg"
    abs = "abs"
    resin = "resin"


class MoldOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_mm: WallMm = WALL_MM_DEFAULT
    material: MoldMaterial = MoldMaterial.pla
    parting: Parting = PARTING_DEFAULT


class ShapeOptions(BaseModel):
    """How the picture becomes a shape: what a person set in the Studio's editor. Every field
    is optional; omitted means the service's default, so older orders are unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    relief_depth: ReliefDepth | None = None
    thickness: Thickness | None = None
    smoothing: Smoothing | None = None


class OrderPlaced(Event):
    """Published by the e-commerce system when a customer orders a sculpture."""

    event_type: ClassVar[str] = "OrderPlaced"

    revision: int = Field(
        1,
        ge=1,
        description="Bumped by the shop when the order changes; a new revision "
        "is a new job, the same revision twice is one job.",
    )
    image: InlineImage | UriImage = Field(discriminator="kind")
    mode: Mode = Mode.multicolor
    color: HexColor | None = Field(None, description="Required for mode 'solid'.")
    size_mm: SizeMm = SIZE_MM_DEFAULT
    mold: MoldOptions = Field(default_factory=MoldOptions)
    shape: ShapeOptions = Field(default_factory=ShapeOptions)
    seed: Seed | None = Field(
        None,
        description="Fixes every random choice; default derives "
        "from order id and revision so replays repeat.",
    )
    subject_hint: SubjectHint | None = Field(
        None, description="Optional: where the subject is; both stylizers honour it."
    )

    @model_validator(mode="after")
    def _color_matches_mode(self) -> OrderPlaced:
        problem = color_problem(self.mode, self.color)
        if problem is not None:
            raise ValueError(problem)
        return self

    def effective_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return deterministic_event_id(self.order_id, self.revision).int % (SEED_MAX + 1)


# --- OrderStatus ------------------------------------------------------------------------


class OrderState(StrEnum):
    accepted = "accepted"
    stylized = "stylized"
    reconstructed = "reconstructed"
    validated = "validated"
    mold_ready = "mold_ready"
    completed = "completed"
    rejected = "rejected"
    failed = "failed"


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="Machine-readable, stable error code (see docs/contracts).")
    message: str = Field(description="What went wrong, for a person.")
    retryable: bool = False


class OrderStatus(Event):
    """Every state an order passes through; exactly one terminal state per order revision."""

    event_type: ClassVar[str] = "OrderStatus"

    revision: int = Field(1, ge=1)
    state: OrderState
    error: ErrorInfo | None = None
    attempt: int = Field(1, ge=1, description="Processing attempt that produced this state.")

    @model_validator(mode="after")
    def _error_iff_unhappy(self) -> OrderStatus:
        unhappy = self.state in (OrderState.rejected, OrderState.failed)
        if unhappy != (self.error is not None):
            raise ValueError("error is required for rejected/failed and forbidden otherwise")
        return self


# --- Artifacts ------------------------------------------------------------------------


class ArtifactRef(BaseModel):
    """Claim check: where an artifact lives and how to verify it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(description="Location in the artifact store (file:// or s3://).")
    sha256: Sha256
    size_bytes: int = Field(ge=0)
    media_type: str


class ModelReady(Event):
    """The sculpture as GLB, for the web viewer and the factory's records."""

    event_type: ClassVar[str] = "ModelReady"

    revision: int = Field(1, ge=1)
    glb: ArtifactRef
    preview: ArtifactRef
    triangles: int = Field(ge=0)
    watertight: bool
    mode: Mode
    color: HexColor | None = None


class MoldReady(Event):
    """The two printable mold halves; what the factory stations act on."""

    event_type: ClassVar[str] = "MoldReady"

    revision: int = Field(1, ge=1)
    half_a: ArtifactRef
    half_b: ArtifactRef
    three_mf: ArtifactRef
    report: ArtifactRef
    cavity_volume_ml: float = Field(ge=0, description="Casting material needed, in ml.")
    material: MoldMaterial


# --- DeadLetter -------------------------------------------------------------------------


class DeadLetterHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    value_base64: str


class DeadLetter(Event):
    """An input the service could not process, kept byte for byte for QA and replay."""

    event_type: ClassVar[str] = "DeadLetter"

    order_id: OrderId | None = None  # type: ignore[assignment]
    original_topic: str
    original_partition: int = Field(ge=0)
    original_offset: int = Field(ge=0)
    original_timestamp_ms: int | None = None
    original_key_base64: str | None
    original_value_base64: str | None = Field(
        description="The input value; null when it was too large to inline, see original_value_ref."
    )
    original_value_ref: ArtifactRef | None = Field(
        None, description="Claim check of the input value when it did not fit in the letter."
    )
    original_headers: list[DeadLetterHeader] = Field(default_factory=list)
    error_class: str = Field(description="Python class of the error, e.g. 'InvalidEvent'.")
    error_code: str
    error_message: str
    attempts: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _value_somewhere(self) -> DeadLetter:
        if (self.original_value_base64 is None) == (self.original_value_ref is None):
            raise ValueError("exactly one of original_value_base64 / original_value_ref")
        return self


# --- StationJob -------------------------------------------------------------------------

StationId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    Field(
        description="Name of the factory station (`sculpt station --station-id`).",
        examples=["printer-hall-2"],
    ),
]


class StationJobState(StrEnum):
    received = "received"  # both halves, 3MF and report downloaded, verified, job folder written
    sliced = "sliced"  # G-code for both halves is in the job folder
    failed = "failed"  # nothing released to the printer; ``error`` says why


class JobFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="File name inside the job folder.")
    sha256: Sha256
    size_bytes: int = Field(ge=0)


class StationJob(Event):
    """What a factory station did with one MoldReady; one event per job state.

    Error codes (``error.code``): ``sha256_mismatch``, ``size_mismatch`` (a downloaded file
    differs from its claim check), ``artifact_missing``, ``material_mismatch`` (the slicer
    profile is for another material than the order's), ``slicing_failed``, ``invalid_event``.
    """

    event_type: ClassVar[str] = "StationJob"

    revision: int = Field(1, ge=1)
    station_id: StationId
    state: StationJobState
    mold_event_id: uuid.UUID | None = Field(
        None, description="event_id of the MoldReady this job came from."
    )
    job_folder: str | None = Field(
        None, description="Folder of the job on the station host (received and sliced)."
    )
    profile: str | None = Field(None, description="Slicer profile used (sliced).")
    files: list[JobFile] = Field(default_factory=list, description="Files in the job folder.")
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _error_iff_failed(self) -> StationJob:
        if (self.state is StationJobState.failed) != (self.error is not None):
            raise ValueError("error is required for failed and forbidden otherwise")
        return self


ALL_EVENTS: tuple[type[Event], ...] = (
    OrderPlaced,
    OrderStatus,
    ModelReady,
    MoldReady,
    DeadLetter,
    StationJob,
)


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def schema_of(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://schemas.sculptsvc.example/{model.event_type}.v{SCHEMA_VERSION}.json"
    return schema
