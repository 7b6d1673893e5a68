"""``report.json``: what each stage of one order found, and the artifacts' hashes.

Identical across runs with the same input and options, except ``timings``; QA compares
:func:`report_without_timings`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from mold.report import software_versions
from sculptsvc.options import PipelineOptions

SOFTWARE = ("sculptsvc", "numpy", "scipy", "opencv-python-headless", "trimesh", "manifold3d")
"""Distributions whose versions the report records (what a replay must match)."""
TIMING_DECIMALS = 4


class InputInfo(BaseModel):
    sha256: str
    bytes: int
    width: int
    height: int
    has_alpha: bool


class StylizeInfo(BaseModel):
    backend: str
    width: int
    height: int
    subject_fraction: float


class ReconstructInfo(BaseModel):
    backend: str
    vertices: int
    triangles: int
    silhouette_iou: float | None = Field(
        None, description="Front projection vs subject mask (classic backend only)."
    )


class GlbValidation(BaseModel):
    validator: Literal["khronos", "skipped"]
    glb_errors: int = 0
    glb_warnings: int = 0
    validator_version: str = ""
    messages: list[str] = Field(default_factory=list)


class ArtifactInfo(BaseModel):
    sha256: str
    bytes: int


class MoldSummary(BaseModel):
    """The facts the service's events carry (full report: ``PipelineReport.mold_report``)."""

    cavity_volume_ml: float
    pour_volume_ml: float
    gate_passed: bool
    parting: str
    halves_triangles: tuple[int, int]


class PipelineReport(BaseModel):
    """``report.json``: every stage's results; identical across runs except ``timings``."""

    schema_version: Literal[1] = 1
    software: dict[str, str]
    options: PipelineOptions
    input: InputInfo
    stylize: StylizeInfo
    reconstruct: ReconstructInfo
    mesh: Any = Field(description="sculptsvc.mesh.MeshReport of the sculpture.")
    validation: GlbValidation
    mold: MoldSummary
    mold_report: Any = Field(description="mold.MoldReport: parting, keys, channels, gate.")
    artifacts: dict[str, ArtifactInfo]
    timings: dict[str, float] = Field(description="Seconds per stage (differs run to run).")

    def to_json_bytes(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()


def software() -> dict[str, str]:
    return software_versions(SOFTWARE)


def rounded_timings(timings: dict[str, float]) -> dict[str, float]:
    return {stage: round(seconds, TIMING_DECIMALS) for stage, seconds in timings.items()}


def report_without_timings(report_json: bytes) -> dict[str, Any]:
    """``report.json`` minus the field that differs between identical runs (for QA diffs)."""
    document = json.loads(report_json)
    document.pop("timings", None)
    return document
