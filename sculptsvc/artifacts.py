"""The artifacts of one order: the one table of their names, media types and event fields.

The pipeline produces them under these names, the processor stores them and fills the
events' claim checks from ``event``/``field``, ``sculpt reproduce`` compares the
deterministic ones, and a second store would use the same list. The mold's file names are
the ``mold`` package's own (``mold.files``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mold import files as mold_files


@dataclass(frozen=True)
class Artifact:
    name: str
    """File name in the pipeline's output and in ``sculpt make``'s folder."""
    media_type: str
    event: Literal["ModelReady", "MoldReady"]
    """The event whose claim check points at it."""
    field: str
    """That event's ``ArtifactRef`` field."""
    deterministic: bool = True
    """Byte-identical on every run with the same input and options."""


MODEL_GLB = Artifact("model.glb", "model/gltf-binary", "ModelReady", "glb")
PREVIEW_PNG = Artifact("preview.png", "image/png", "ModelReady", "preview")
MOLD_A_STL = Artifact(mold_files.HALF_A, "model/stl", "MoldReady", "half_a")
MOLD_B_STL = Artifact(mold_files.HALF_B, "model/stl", "MoldReady", "half_b")
MOLD_3MF = Artifact(mold_files.THREE_MF, "model/3mf", "MoldReady", "three_mf")
REPORT_JSON = Artifact("report.json", "application/json", "MoldReady", "report", False)
"""``report.json`` lists the others' sha256; its ``timings`` differ run to run."""

ARTIFACTS: tuple[Artifact, ...] = (
    MODEL_GLB,
    PREVIEW_PNG,
    MOLD_A_STL,
    MOLD_B_STL,
    MOLD_3MF,
    REPORT_JSON,
)
BY_NAME = {a.name: a for a in ARTIFACTS}
DETERMINISTIC: tuple[Artifact, ...] = tuple(a for a in ARTIFACTS if a.deterministic)
NAMES: tuple[str, ...] = tuple(a.name for a in ARTIFACTS)

UNKNOWN_MEDIA_TYPE = "application/octet-stream"
"""Bytes that are none of the above (e.g. a dead letter's oversized input)."""

STYLIZED_NAME = "stylized.png"
"""Not published: the stylized picture, written by ``sculpt make`` for debugging."""


def refs_for(event: str, refs: dict[str, object]) -> dict[str, object]:
    """``{field: ref}`` for ``event`` from ``{artifact name: ref}``."""
    return {a.field: refs[a.name] for a in ARTIFACTS if a.event == event}


def media_type(name: str) -> str:
    """The media type of artifact ``name`` (``UNKNOWN_MEDIA_TYPE`` for other files)."""
    artifact = BY_NAME.get(name)
    return UNKNOWN_MEDIA_TYPE if artifact is None else artifact.media_type
