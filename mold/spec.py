"""What the customer/factory asks for (``MoldSpec``) and the engineering tunables (``MoldParams``).

``MoldSpec`` is part of the order contract: every field has a unit in its name and a bound
that keeps a printable mold. ``MoldParams`` holds the numbers an engineer tunes (ray epsilon,
taper angles, tolerances of the gate); both go into the report so a replay is exact.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mold.errors import PartTooThinForSprue, SprueTooLarge

# The order's size and wall: the one definition of their bounds and defaults. The service's
# event contract (``OrderPlaced``) and pipeline options import these; this package imports
# nothing of the service.
SIZE_MM_DEFAULT = 80.0
SIZE_MM_MIN = 10.0
SIZE_MM_MAX = 600.0
WALL_MM_DEFAULT = 4.0
WALL_MM_MIN = 1.0
WALL_MM_MAX = 50.0
SPRUE_MM_DEFAULT = 6.0  # the pour channel when none is asked for ...
SPRUE_PART_WIDTH_SHARE = 0.9  # ... narrowed to at most this share of a thinner part's width
SPRUE_MM_MIN = 2.0

PartingMode = Literal["auto", "x", "y", "z"]
PrintOrientation = Literal["parting_down", "parting_up"]


class MoldSpec(BaseModel):
    """A two-part mold order: sizes are absolute millimetres, never ratios."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size_mm: float | None = Field(
        SIZE_MM_DEFAULT,
        ge=SIZE_MM_MIN,
        le=SIZE_MM_MAX,
        description="Longest side of the part's bounding box, mm; None: the part is already "
        "in millimetres and keeps its size.",
    )
    wall_mm: float = Field(
        WALL_MM_DEFAULT,
        ge=WALL_MM_MIN,
        le=WALL_MM_MAX,
        description="Least mold material around the cavity, mm.",
    )
    clearance_mm: float = Field(
        0.2, ge=0.0, le=2.0, description="Gap between a male key and its socket, per side, mm."
    )
    key_count: int = Field(4, ge=2, le=8, description="Registration keys (male on half B).")
    key_diameter_mm: float = Field(
        6.0, ge=2.0, le=30.0, description="Base diameter of a registration key, mm."
    )
    sprue_diameter_mm: float | None = Field(
        None,
        ge=SPRUE_MM_MIN,
        le=30.0,
        description=f"Pour channel diameter where it meets the cavity, mm. None: "
        f"{SPRUE_MM_DEFAULT:g} mm, narrowed to {SPRUE_PART_WIDTH_SHARE:g}x the width of a "
        f"thinner part (a pen, a mast); the report's sprue channel gives the diameter used.",
    )
    vent_count: int = Field(
        3, ge=0, le=16, description="Most air vents, one per local high point of the cavity."
    )
    vent_diameter_mm: float = Field(2.0, ge=0.8, le=10.0, description="Air vent diameter, mm.")
    parting: PartingMode = Field(
        "auto",
        description="Pull direction: `auto` (least undercut among axes and principal axes) "
        "or a part axis.",
    )
    parting_offset_mm: float | None = Field(
        None,
        description="Parting plane position along the pull axis from the part's bounding-box "
        "centre (scaled part, mm); None chooses the level with least undercut and largest "
        "cross-section.",
    )
    print_orientation: PrintOrientation = Field(
        "parting_down",
        description="How half A (female, pour side) lies on the bed. Half B carries the male "
        "keys and is always printed parting face up.",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> MoldSpec:
        if self.parting == "auto" and self.parting_offset_mm is not None:
            raise ValueError("parting_offset_mm needs a fixed parting axis, not `auto`")
        if self.vent_count and self.vent_diameter_mm >= (
            self.sprue_diameter_mm or SPRUE_MM_DEFAULT
        ):
            raise ValueError("vent_diameter_mm must be smaller than sprue_diameter_mm")
        return self

    def sprue_mm(self, part_width_mm: float) -> float:
        """The sprue's diameter for a part this wide (its narrower horizontal extent in the
        mold frame, so it depends on the parting): ``SprueTooLarge`` (a bad order) when the
        diameter asked for does not fit, ``PartTooThinForSprue`` (a part to make thicker or
        larger) when not even the narrowest sprue does. Both are ``SprueDoesNotFit``: the
        mold tries its next parting before it refuses the part."""
        room = SPRUE_PART_WIDTH_SHARE * part_width_mm
        if self.sprue_diameter_mm is not None:
            if self.sprue_diameter_mm > room:
                raise SprueTooLarge(
                    "sprue_diameter_mm is too large for this part",
                    sprue_diameter_mm=self.sprue_diameter_mm,
                    part_width_mm=round(part_width_mm, 3),
                )
            return self.sprue_diameter_mm
        sprue = min(SPRUE_MM_DEFAULT, room)
        least = max(SPRUE_MM_MIN, self.vent_diameter_mm if self.vent_count else 0.0)
        if sprue <= least:
            raise PartTooThinForSprue(
                f"the part is too thin for a sprue: {part_width_mm:.2f} mm across leaves "
                f"{room:.2f} mm, and a sprue must be wider than {least:g} mm; make it thicker "
                "or larger",
                part_width_mm=round(part_width_mm, 3),
            )
        return sprue


class MoldParams(BaseModel):
    """Engineering tunables; defaults are what the gate and the slicer tests were run with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # part
    check_self_intersections: bool = Field(
        True, description="Reject parts whose surface passes through itself (~0.1 s at 20k)."
    )
    min_mean_thickness_mm: float = Field(
        0.5,
        ge=0,
        description="Least mean thickness of the part at its mold size, mm: twice its volume "
        "over its surface area, which is a plate's thickness and a rod's radius. Casting resin "
        "and silicone do not fill a thinner cavity; 0 turns the check off.",
    )
    # parting
    parting_levels: int = Field(33, ge=3, description="Plane levels tried per pull direction.")
    parting_fallback_candidates: int = Field(
        8, ge=1, description="Partings tried, best first, until one passes every gate."
    )
    parting_alternate_levels: int = Field(
        2, ge=0, description="Fallback levels per pull direction besides its best one."
    )
    parting_level_separation: float = Field(
        0.1, gt=0, lt=1, description="Fallback levels keep this fraction of the extent apart."
    )
    parting_level_margin: float = Field(
        0.05, gt=0, lt=0.5, description="Levels kept this fraction away from the part's ends."
    )
    parting_sample_faces: int = Field(
        3000, ge=100, description="Area-weighted faces ray-cast when ranking directions."
    )
    parting_seed: int = Field(0, description="Seed of that (deterministic) sample.")
    parting_report_faces: int = Field(
        50_000,
        ge=1000,
        description="Parts with more faces have the chosen parting's undercut measured on an "
        "area-weighted sample of this many (seeded; standard error at most 0.23 % of the "
        "area); smaller parts on every face.",
    )
    undercut_tie_fraction: float = Field(
        0.005, ge=0, description="Undercut differences below this share of area are ties."
    )
    principal_axis_dedupe_deg: float = Field(
        5.0, ge=0, description="Principal axes this close to a part axis are not tried again."
    )
    ray_epsilon_fraction: float = Field(
        1e-6, gt=0, description="Ray start offset as a fraction of the size, against self-hits."
    )
    plane_vertex_clearance_mm: float = Field(
        1e-3, gt=0, description="The parting plane keeps this far from any part vertex, mm."
    )
    plane_max_shift_mm: float = Field(
        0.5, gt=0, description="Farthest the plane moves to keep that clearance, mm."
    )
    # keys
    key_height_ratio: float = Field(0.5, gt=0, description="Key height over key base diameter.")
    key_tip_ratio: float = Field(0.6, gt=0, le=1, description="Key tip over base diameter.")
    key_sink_mm: float = Field(1.0, gt=0, description="Key depth below the parting face.")
    key_edge_margin_mm: float = Field(
        2.0, ge=0, description="Least material between a key socket and an outer face, mm."
    )
    key_candidates_per_side: int = Field(12, ge=2, description="Key positions tried per side.")
    key_margin_growth_steps: int = Field(
        6, ge=0, description="Times the block may grow sideways to make room for keys."
    )
    # channels
    sprue_taper_deg: float = Field(4.0, ge=0, le=30, description="Sprue half-angle, widening up.")
    sprue_min_length_mm: float = Field(
        10.0, ge=0, description="Least pour channel length (top wall thickness), mm."
    )
    channel_overlap_mm: float = Field(
        0.5, gt=0, description="How far sprue and vents reach into the cavity, mm."
    )
    channel_overshoot_mm: float = Field(
        1.0, gt=0, description="How far channel tools stick out of the top face, mm."
    )
    vent_min_spacing_mm: float = Field(
        8.0, gt=0, description="Radius within which a vent point must be the highest, mm."
    )
    circular_segments: int = Field(32, ge=8, description="Segments of keys, sprue and vents.")
    # gate
    cavity_volume_tolerance: float = Field(
        1e-5,
        gt=0,
        le=0.005,
        description="Relative, cavity vs part. The order contract allows 0.5 %; exact booleans "
        "give < 1e-12, and a socket breaking into the cavity must not hide in the slack.",
    )
    wall_tolerance_mm: float = Field(1e-3, ge=0, description="Slack on the minimum wall, mm.")
    overlap_tolerance_mm3: float = Field(1e-3, ge=0, description="Allowed A/B overlap, mm^3.")
    sliver_volume_mm3: float = Field(
        1e-6, ge=0, description="Void pieces below this are boolean slivers, not gaps, mm^3."
    )
    fleck_volume_mm3: float = Field(
        0.1,
        ge=0,
        description="Loose mold pieces below this (flecks left where a channel grazes the "
        "cavity; no printer resolves them) are dropped before the single-shell gate, mm^3.",
    )
    # output
    layout_gap_mm: float = Field(10.0, ge=0, description="Gap between the halves in the 3MF.")
    report_decimals: int = Field(4, ge=1, le=9, description="Decimals of floats in the report.")
    three_mf_decimals: int = Field(6, ge=3, le=9, description="Decimals of 3MF coordinates.")
