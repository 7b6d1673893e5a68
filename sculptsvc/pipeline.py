"""One order, start to finish, without Kafka: picture bytes in, artifacts and a report out.

The Kafka service (through the worker pool), ``sculpt make`` and ``sculpt reproduce`` all
call :func:`run_pipeline`, so a replay runs exactly what production ran.

 1. decode       untrusted bytes -> RGB(A) array, limits from ``Settings``
 2. stylize      the configured ``Stylizer`` (classic: subject mask + silicone look)
 3. reconstruct  the configured ``Reconstructor`` -> closed coloured mesh
 4. place        scale to ``size_mm`` (longest side), stand it on y = 0, centre x and z
 5. mesh         repair, smooth, ~``target_faces`` triangles (``sculptsvc.mesh``)
 6. glb          UV atlas, baked texture, silicone PBR material; Khronos-validated
 7. preview      PNG render of the sculpture
 8. mold         two-part mold with keys, sprue and vents (``mold``), gated

Determinism: the same picture and options give byte-identical ``model.glb``,
``preview.png``, ``mold_a.stl``, ``mold_b.stl`` and ``mold.3mf`` (every random choice is
seeded; no wall-clock value goes into them). ``report.json`` lists their sha256 and is
itself identical except for its ``timings`` field (seconds per stage, different on every
run), so QA compares hashes, or the report without ``timings``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from sculptsvc.errors import (
    InvalidEvent,
    MeshProcessingFailed,
    ModelOutputInvalid,
    MoldFailed,
    NoSubject,
    UnrepairableMesh,
)
from sculptsvc.events import OrderPlaced, SubjectHint
from sculptsvc.imaging import decode_image_with_settings
from sculptsvc.logging import get_logger
from sculptsvc.reconstruct.base import ColoredMesh, ColorSource, Reconstructor
from sculptsvc.settings import Settings
from sculptsvc.stylize.base import StylizedImage, Stylizer

log = get_logger(__name__)

ARTIFACT_NAMES = ("model.glb", "preview.png", "mold_a.stl", "mold_b.stl", "mold.3mf")
"""Byte-identical on every run with the same input and options."""
REPORT_NAME = "report.json"
_SOFTWARE = ("sculptsvc", "numpy", "scipy", "opencv-python-headless", "trimesh", "manifold3d")


class PipelineOptions(BaseModel):
    """What one order asks for; everything that changes the artifacts is in here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["multicolor", "solid"] = Field(
        "multicolor", description="multicolor: the picture as a texture; solid: one colour."
    )
    color: str | None = Field(
        None,
        pattern=r"^#[0-9A-Fa-f]{6}$",
        description="sRGB '#RRGGBB'; required for solid, the fallback colour otherwise.",
    )
    size_mm: float = Field(80.0, gt=0, description="Longest side of the sculpture, mm.")
    wall_mm: float = Field(4.0, gt=0, description="Mold wall thickness, mm.")
    mold_material: str = Field("pla", description="What the mold is printed from (recorded).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds every random choice.")
    target_faces: int = Field(20_000, ge=500, description="Triangles of the sculpture.")
    preview_size: int = Field(512, ge=64, le=4096, description="Preview PNG side, pixels.")
    subject_hint: SubjectHint | None = Field(None, description="The order's subject hint.")
    validate_glb: bool | None = Field(
        None,
        description="Run the Khronos glTF validator: True requires it, None uses it when "
        "installed, False skips it.",
    )

    def model_post_init(self, __context: Any) -> None:
        if self.mode == "solid" and self.color is None:
            raise InvalidEvent("mode 'solid' needs a color '#RRGGBB'")


def options_from_order(order: OrderPlaced, settings: Settings) -> PipelineOptions:
    """The pipeline options an ``OrderPlaced`` event asks for (seed derived when absent)."""
    return PipelineOptions(
        mode=order.mode.value,
        color=order.color,
        size_mm=order.size_mm,
        wall_mm=order.mold.wall_mm,
        mold_material=order.mold.material.value,
        seed=order.effective_seed(),
        target_faces=settings.target_faces,
        subject_hint=order.subject_hint,
    )


# --- report ------------------------------------------------------------------------------


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


@dataclass
class PipelineResult:
    """artifacts: file name -> bytes (``ARTIFACT_NAMES`` + ``report.json``);
    extras: debugging outputs that are not published (``stylized.png``)."""

    artifacts: dict[str, bytes]
    report: PipelineReport
    extras: dict[str, bytes] = field(default_factory=dict)


# --- the pipeline ----------------------------------------------------------------------


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - start, 4)


def run_pipeline(
    image_bytes: bytes,
    options: PipelineOptions,
    stylizer: Stylizer,
    reconstructor: Reconstructor,
    settings: Settings,
) -> PipelineResult:
    """Run one order; raises the typed errors of ``sculptsvc.errors`` (reject vs fail)."""
    from mold import MoldSpec
    from sculptsvc.mesh import MeshParams
    from sculptsvc.stylize.subject import hint_from_event

    timings: dict[str, float] = {}
    started = time.perf_counter()

    # 1. decode
    with _timed(timings, "decode"):
        image = decode_image_with_settings(image_bytes, settings)

    # 2. stylize
    with _timed(timings, "stylize"):
        styled = stylizer.stylize(
            image, seed=options.seed, hint=hint_from_event(options.subject_hint)
        )
    _check_stylized(styled, stylizer)

    # 3. reconstruct
    with _timed(timings, "reconstruct"):
        raw = reconstructor.reconstruct(styled, seed=options.seed)
    _check_mesh(raw, reconstructor)
    iou = _silhouette_iou(raw, styled, reconstructor)

    # 4. place: millimetres, standing on y = 0
    with _timed(timings, "place"):
        placed = place_in_mm(raw, options.size_mm)

    # 5-7. mesh stage, GLB (validated), preview
    mesh_params = MeshParams(target_faces=options.target_faces, mold_size_mm=options.size_mm)
    processed, glb, preview, validation = _mesh_stage(placed, mesh_params, options, timings)

    # 8. mold
    spec = MoldSpec(size_mm=options.size_mm, wall_mm=options.wall_mm)
    with _timed(timings, "mold"):
        mold_result = _make_mold(processed.mesh.vertices, processed.mesh.faces, spec)
    timings["total"] = round(time.perf_counter() - started, 4)

    artifacts = {
        "model.glb": glb,
        "preview.png": preview,
        "mold_a.stl": mold_result.stl_a,
        "mold_b.stl": mold_result.stl_b,
        "mold.3mf": mold_result.three_mf,
    }
    mold_report = mold_result.report
    report = PipelineReport(
        software=_software(),
        options=options,
        input=InputInfo(
            sha256=hashlib.sha256(image_bytes).hexdigest(),
            bytes=len(image_bytes),
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            has_alpha=image.shape[2] == 4,
        ),
        stylize=StylizeInfo(
            backend=stylizer.name,
            width=int(styled.mask.shape[1]),
            height=int(styled.mask.shape[0]),
            subject_fraction=round(float(styled.mask.mean()), 6),
        ),
        reconstruct=ReconstructInfo(
            backend=reconstructor.name,
            vertices=len(raw.vertices),
            triangles=len(raw.faces),
            silhouette_iou=iou,
        ),
        mesh=processed.report,
        validation=validation,
        mold=MoldSummary(
            cavity_volume_ml=mold_report.cavity_volume_ml,
            pour_volume_ml=mold_report.pour_volume_ml,
            gate_passed=mold_report.gate.passed,
            parting=mold_report.parting.chosen,
            halves_triangles=(mold_report.halves[0].triangles, mold_report.halves[1].triangles),
        ),
        mold_report=mold_report,
        artifacts={
            name: ArtifactInfo(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
            for name, data in artifacts.items()
        },
        timings=timings,
    )
    artifacts[REPORT_NAME] = report.to_json_bytes()
    log.info(
        "pipeline done",
        triangles=processed.report.triangles,
        cavity_ml=mold_report.cavity_volume_ml,
        seconds=timings["total"],
    )
    return PipelineResult(
        artifacts=artifacts, report=report, extras={"stylized.png": _png(styled.rgba)}
    )


def _mesh_stage(
    placed: ColoredMesh,
    params: Any,
    options: PipelineOptions,
    timings: dict[str, float],
) -> tuple[Any, bytes, bytes, GlbValidation]:
    from sculptsvc.mesh import export_glb, process_mesh, render_preview

    with _timed(timings, "mesh"):
        processed = process_mesh(placed, params)
    if not processed.report.watertight or processed.report.shells != 1:
        raise MeshProcessingFailed(
            "the processed sculpture is not one watertight shell",
            watertight=processed.report.watertight,
            shells=processed.report.shells,
        )
    with _timed(timings, "glb"):
        glb = export_glb(processed, mode=options.mode, color_hex=options.color)
    with _timed(timings, "preview"):
        preview = render_preview(
            processed, mode=options.mode, color_hex=options.color, size=options.preview_size
        )
    with _timed(timings, "validate"):
        validation = _validate(glb, options.validate_glb)
    return processed, glb, preview, validation


def _validate(glb: bytes, wanted: bool | None) -> GlbValidation:
    """Khronos validator on the GLB; errors or warnings fail the order (we never ship them)."""
    from sculptsvc.gltf_validator import validate_glb, validator_available

    if wanted is False or (wanted is None and not validator_available()):
        return GlbValidation(validator="skipped")
    report = validate_glb(glb)
    result = GlbValidation(
        validator="khronos",
        glb_errors=report.num_errors,
        glb_warnings=report.num_warnings,
        validator_version=report.validator_version,
        messages=[f"{m.code}: {m.message} ({m.pointer})" for m in report.messages[:20]],
    )
    if not report.ok:
        raise MeshProcessingFailed(
            "the GLB does not pass the Khronos glTF validator",
            errors=report.num_errors,
            warnings=report.num_warnings,
            messages=result.messages,
        )
    return result


def _make_mold(vertices: np.ndarray, faces: np.ndarray, spec: Any) -> Any:
    """``mold.make_mold`` with its errors mapped onto the service's error tree."""
    from mold import InvalidSpec, MoldError, make_mold

    try:
        return make_mold(np.asarray(vertices), np.asarray(faces), spec)
    except InvalidSpec as exc:
        raise InvalidEvent(
            f"mold options do not fit this sculpture: {exc.message}",
            mold_code=exc.code,
            **exc.detail,
        ) from exc
    except MoldError as exc:
        error = UnrepairableMesh if exc.rejects_input else MoldFailed
        raise error(f"mold: {exc.message}", mold_code=exc.code, **exc.detail) from exc


# --- placing the reconstruction -----------------------------------------------------------


@dataclass(frozen=True)
class PlacedColorSource:
    """A ``ColorSource`` of the reconstructor's units, read through the placement:
    ``source_point = (point - offset) / scale``. Picklable when the source is."""

    source: ColorSource
    scale: float
    offset: tuple[float, float, float]

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        local = (np.asarray(points, dtype=np.float64) - np.asarray(self.offset)) / self.scale
        return self.source(local, normals)


def place_in_mm(mesh: ColoredMesh, size_mm: float) -> ColoredMesh:
    """Scale so the longest side is ``size_mm``, stand on y = 0, centre x and z."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    scale = size_mm / float((hi - lo).max())
    centre = 0.5 * (lo + hi)
    anchor = np.array([centre[0], lo[1], centre[2]])
    offset = -anchor * scale
    placed = vertices * scale + offset
    source = (
        PlacedColorSource(mesh.color_source, scale, tuple(float(v) for v in offset))
        if mesh.color_source is not None
        else None
    )
    return ColoredMesh(
        vertices=placed,
        faces=np.asarray(mesh.faces, dtype=np.int64),
        vertex_colors=mesh.vertex_colors,
        color_source=source,
    )


# --- checks on what the backends hand over ------------------------------------------------


def _check_stylized(styled: StylizedImage, stylizer: Stylizer) -> None:
    rgba, mask = np.asarray(styled.rgba), np.asarray(styled.mask)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ModelOutputInvalid(
            f"stylizer {stylizer.name!r} returned rgba {rgba.shape} {rgba.dtype}",
            backend=stylizer.name,
        )
    if mask.shape != rgba.shape[:2] or mask.dtype != bool:
        raise ModelOutputInvalid(
            f"stylizer {stylizer.name!r} returned mask {mask.shape} {mask.dtype}",
            backend=stylizer.name,
        )
    if not mask.any():
        raise NoSubject("the stylized picture has no subject", backend=stylizer.name)


def _check_mesh(mesh: ColoredMesh, reconstructor: Reconstructor) -> None:
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    name = reconstructor.name
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 4:
        raise ModelOutputInvalid(f"reconstructor {name!r}: bad vertices {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) < 4:
        raise ModelOutputInvalid(f"reconstructor {name!r}: bad faces {faces.shape}")
    if not np.isfinite(vertices).all():
        raise ModelOutputInvalid(f"reconstructor {name!r}: non-finite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ModelOutputInvalid(f"reconstructor {name!r}: face indices out of range")
    if float(np.ptp(vertices, axis=0).max()) <= 0:
        raise ModelOutputInvalid(f"reconstructor {name!r}: the mesh has no extent")
    if mesh.vertex_colors is None and mesh.color_source is None:
        raise ModelOutputInvalid(f"reconstructor {name!r}: the mesh carries no colours")


def _silhouette_iou(
    mesh: ColoredMesh, styled: StylizedImage, reconstructor: Reconstructor
) -> float | None:
    """Outline fidelity, where the mesh is in the stylized image's pixel units (classic)."""
    if reconstructor.name != "classic":
        return None
    from sculptsvc.reconstruct.classic import silhouette_iou

    return round(silhouette_iou(mesh.vertices, mesh.faces, styled.mask), 4)


# --- helpers -----------------------------------------------------------------------------


def _png(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _software() -> dict[str, str]:
    versions = {}
    for name in _SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def report_without_timings(report_json: bytes) -> dict[str, Any]:
    """``report.json`` minus the field that differs between identical runs (for QA diffs)."""
    document = json.loads(report_json)
    document.pop("timings", None)
    return document
