"""The mold report (``mold.json``): what the factory needs and what QA compares byte for byte.

Frames: positions are in the *mold frame* (mm): +z is half A's pull direction, the parting
plane is z = 0, the part's bounding box is centred on the z axis. ``input_to_mold`` maps the
caller's vertices there (scale included); each half's ``print_to_mold`` maps its STL there.
Matrices are row-major 4x4 acting on column vectors. Floats are rounded when the report is
built (``MoldParams.report_decimals``), so the JSON is stable across runs.
"""

from __future__ import annotations

import importlib.metadata
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mold.spec import MoldParams, MoldSpec

Vec3 = tuple[float, float, float]
Matrix4 = tuple[tuple[float, float, float, float], ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartInfo(_Frozen):
    input_vertices: int
    input_triangles: int
    triangles: int
    bodies_merged: int
    bodies_dropped: int
    scale_mm_per_unit: float
    volume_ml: float
    surface_area_mm2: float
    bbox_min: Vec3
    bbox_max: Vec3
    input_to_mold: Matrix4


class CandidateInfo(_Frozen):
    name: str
    pull_direction: Vec3
    plane_offset_mm: float
    undercut_fraction_sampled: float
    cross_section_mm2: float


class PartingAttempt(_Frozen):
    """One parting the mold tried, in the order tried; ``refused``: why it was refused (a
    gate, keys or a sprue that did not fit)."""

    name: str
    pull_direction: Vec3
    plane_offset_mm: float
    passed: bool
    refused: str


class PartingInfo(_Frozen):
    mode: str
    chosen: str
    pull_direction: Vec3  # in the caller's frame: half A is pulled this way
    plane_offset_mm: float  # along pull_direction from the part's bounding-box centre
    cross_section_mm2: float
    undercut_fraction_a: float
    undercut_fraction_b: float
    undercut_area_a_mm2: float
    undercut_area_b_mm2: float
    undercut_faces_cast: int  # the undercut figures' rays: every face, or a sample of a scan
    candidates: tuple[CandidateInfo, ...]
    tried: tuple[PartingAttempt, ...] = ()  # best-ranked first; the last one passed


class HalfInfo(_Frozen):
    name: Literal["a", "b"]
    file: str
    role: str
    triangles: int
    volume_ml: float
    bbox_min: Vec3  # print frame: on z = 0
    bbox_max: Vec3
    print_orientation: Literal["parting_down", "parting_up"]
    print_to_mold: Matrix4
    sha256: str


class KeyInfo(_Frozen):
    position: Vec3  # centre on the parting plane
    diameter_mm: float
    tip_diameter_mm: float
    height_mm: float
    sink_mm: float
    clearance_mm: float
    male_half: Literal["b"] = "b"


class ChannelInfo(_Frozen):
    kind: Literal["sprue", "vent"]
    cavity_point: Vec3
    top: Vec3
    diameter_bottom_mm: float
    diameter_top_mm: float


class GateCheck(_Frozen):
    name: str
    passed: bool
    measured: float
    limit: float
    detail: str = ""


class GateInfo(_Frozen):
    passed: bool
    checks: tuple[GateCheck, ...]


class MoldReport(_Frozen):
    schema_version: Literal[1] = 1
    software: dict[str, str]
    spec: MoldSpec
    params: MoldParams
    part: PartInfo
    parting: PartingInfo
    cavity_volume_ml: float
    pour_volume_ml: float
    mold_material_ml: float
    block_min: Vec3
    block_max: Vec3
    halves: tuple[HalfInfo, HalfInfo]
    keys: tuple[KeyInfo, ...]
    keys_polarised: bool
    sprue: ChannelInfo
    vents: tuple[ChannelInfo, ...]
    three_mf_sha256: str
    gate: GateInfo


def software_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each distribution (``unknown`` when it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions
