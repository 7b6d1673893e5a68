"""What one order asks for: each order parameter defined once, with one set of bounds.

The event contract (``sculptsvc.events.OrderPlaced``), the pipeline (``PipelineOptions``)
and the commands all use these definitions. Size and wall bounds come from ``mold.spec``:
the mold package stands alone and owns them; this module imports them, never the reverse.

    OrderPlaced (Kafka, validated once by intake)
        └── options_from_order() ──► PipelineOptions ──► worker ──► run_pipeline()
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mold.spec import (
    SIZE_MM_DEFAULT,
    SIZE_MM_MAX,
    SIZE_MM_MIN,
    WALL_MM_DEFAULT,
    WALL_MM_MAX,
    WALL_MM_MIN,
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

SOLID_NEEDS_COLOR = "mode 'solid' needs a color (#RRGGBB)"


def color_problem(mode: Mode | str, color: str | None) -> str | None:
    """Why ``mode``/``color`` do not go together, or None when they do."""
    return SOLID_NEEDS_COLOR if mode == Mode.solid and color is None else None


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
    seed: Seed = Field(0, description="Seeds every random choice.")
    target_faces: TargetFaces = TARGET_FACES_DEFAULT
    preview_size: int = Field(512, ge=64, le=4096, description="Preview PNG side, pixels.")
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
        seed=order.effective_seed(),
        target_faces=settings.target_faces,
    )
