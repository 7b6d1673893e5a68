"""What one order asks for: each order parameter defined once, with one set of bounds.

The event contract (``sculptsvc.events.OrderPlaced``), the pipeline (``PipelineOptions``)
and the commands all use these definitions. Size and wall bounds come from ``mold.spec``:
the mold package stands alone and owns them; this module imports them, never the reverse.

    OrderPlaced (Kafka, validated once by intake)
        └── options_from_order() ──► PipelineOptions ──► worker ──► run_pipeline()
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mold.spec import (
    SIZE_MM_DEFAULT,
    SIZE_MM_MAX,
    SIZE_MM_MIN,
    WALL_MM_DEFAULT,
    WALL_MM_MAX,
    WALL_MM_MIN,
    PartingMode,
)

if TYPE_CHECKING:
    from sculptsvc.events import OrderPlaced
    from sculptsvc.settings import Settings

SEED_MAX = 2**32 - 1
"""Seeds are unsigned 32-bit: what every backend's RNG accepts."""


MODE_HELP = "multicolor: the picture as a texture; solid: one colour."


class Mode(StrEnum):
    # (no docstring: it would become the schema's description of the contract's enum)
    multicolor = "multicolor"
    solid = "solid"


HexColor = Annotated[
    str,
    StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$"),
    Field(description="sRGB colour as #RRGGBB.", examples=["#E4572E"]),
]
SizeMm = Annotated[
    float,
    Field(ge=SIZE_MM_MIN, le=SIZE_MM_MAX, description="Longest side of the sculpture."),
]
WallMm = Annotated[
    float,
    Field(ge=WALL_MM_MIN, le=WALL_MM_MAX, description="Mold wall thickness in mm."),
]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
TARGET_FACES_DEFAULT = 20_000
TargetFaces = Annotated[int, Field(ge=500, description="Triangles of the sculpture.")]
"""The service's triangle budget (``Settings.target_faces`` sets it for every order)."""

Parting = Annotated[
    PartingMode,
    Field(
        description="Pull direction of mold half A: `auto` (least undercut) or a sculpture "
        "axis (y up, z toward the front)."
    ),
]
PARTING_DEFAULT: PartingMode = "auto"

# The shape an order asks for (the Studio's editor sets these; see docs/contracts/orders.md).
# Relief and thickness are multipliers of the reconstructor's defaults: 1 changes nothing.
SHAPE_NEUTRAL = 1.0
ReliefDepth = Annotated[
    float,
    Field(
        ge=0.0,
        le=4.0,
        description="Multiplier of the picture's relief on the front (0: none, 1: default). "
        "Needs a reconstructor that builds relief (classic); others reject values but 1.",
    ),
]
Thickness = Annotated[
    float,
    Field(
        ge=0.25,
        le=3.0,
        description="Multiplier of the sculpture's depth, front to back (1: default). Needs "
        "a reconstructor that inflates the outline (classic); others reject values but 1.",
    ),
]
Smoothing = Annotated[
    int, Field(ge=0, le=50, description="Smoothing passes of the mesh stage (0: off).")
]

SOLID_NEEDS_COLOR = "mode 'solid' needs a color (#RRGGBB)"


def color_problem(mode: Mode | str, color: str | None) -> str | None:
    """Why ``mode``/``color`` do not go together, or None when they do."""
    return SOLID_NEEDS_COLOR if mode == Mode.solid and color is None else None


class SubjectMask(BaseModel):
    """A PNG subject mask sent inside the event (masks are small: no URI form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["inline"] = "inline"
    media_type: Literal["image/png"] = "image/png"
    data_base64: str = Field(min_length=4, description="Standard base64 of the PNG file.")

    def decoded(self) -> bytes:
        return base64.b64decode(self.data_base64, validate=True)

    @model_validator(mode="after")
    def _check_base64(self) -> SubjectMask:
        try:
            base64.b64decode(self.data_base64, validate=True)
        except ValueError as exc:
            raise ValueError(f"data_base64 is not valid base64: {exc}") from None
        return self


class SubjectBox(BaseModel):
    """A box around the subject, as fractions of the picture's width and height; left <
    right and top < bottom (checked by the service: JSON Schema cannot compare fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    left: float = Field(ge=0.0, le=1.0)
    top: float = Field(ge=0.0, le=1.0)
    right: float = Field(ge=0.0, le=1.0)
    bottom: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> SubjectBox:
        if not (self.left < self.right and self.top < self.bottom):
            raise ValueError("subject box needs left < right and top < bottom")
        return self


class SubjectHint(BaseModel):
    """Where the subject is, when the shop knows (its own cut-out tool, a crop the customer
    drew). Exactly one of ``box`` (outside it is background) or ``mask`` (a PNG the size of
    the picture or stretched to it: alpha >= 128, or without alpha grey >= 128, is the
    subject)."""

    # "exactly one" in the schema too, so that clients validating against it agree
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["box"],
                    "properties": {"box": {"type": "object"}, "mask": {"type": "null"}},
                },
                {
                    "required": ["mask"],
                    "properties": {"mask": {"type": "object"}, "box": {"type": "null"}},
                },
            ]
        },
    )

    box: SubjectBox | None = None
    mask: SubjectMask | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SubjectHint:
        if (self.box is None) == (self.mask is None):
            raise ValueError("subject_hint needs exactly one of box or mask")
        return self


class PipelineOptions(BaseModel):
    """What one order asks for; everything that changes the artifacts is in here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(Mode.multicolor, description=MODE_HELP)
    color: HexColor | None = Field(
        None, description="sRGB '#RRGGBB'; required for solid, the fallback colour otherwise."
    )
    size_mm: SizeMm = Field(SIZE_MM_DEFAULT, description="Longest side of the sculpture, mm.")
    wall_mm: WallMm = Field(WALL_MM_DEFAULT, description="Mold wall thickness, mm.")
    mold_material: str = Field("pla", description="What the mold is printed from (recorded).")
    parting: Parting = PARTING_DEFAULT
    relief_depth: ReliefDepth = SHAPE_NEUTRAL
    thickness: Thickness = SHAPE_NEUTRAL
    smoothing: Smoothing | None = Field(
        None, description="Mesh smoothing passes; None: the mesh stage's default."
    )
    seed: Seed = Field(0, description="Seeds every random choice.")
    target_faces: TargetFaces = TARGET_FACES_DEFAULT
    preview_size: int = Field(512, ge=64, le=4096, description="Preview PNG side, pixels.")
    subject_hint: SubjectHint | None = Field(None, description="The order's subject hint.")
    validate_glb: bool | None = Field(
        None,
        description="Run the Khronos glTF validator: True requires it, None uses it when "
        "installed, False skips it.",
    )

    def model_post_init(self, __context: Any) -> None:
        from sculptsvc.errors import InvalidEvent

        problem = color_problem(self.mode, self.color)
        if problem is not None:
            raise InvalidEvent(problem)


def options_from_order(order: OrderPlaced, settings: Settings) -> PipelineOptions:
    """The pipeline options an ``OrderPlaced`` event asks for (seed derived when absent)."""
    return PipelineOptions(
        mode=order.mode,
        color=order.color,
        size_mm=order.size_mm,
        wall_mm=order.mold.wall_mm,
        mold_material=order.mold.material.value,
        parting=order.mold.parting,
        **order.shape.model_dump(exclude_none=True),  # omitted: the defaults above
        seed=order.effective_seed(),
        target_faces=settings.target_faces,
        subject_hint=order.subject_hint,
    )
