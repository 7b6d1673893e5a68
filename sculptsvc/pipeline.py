"""One order, start to finish, without Kafka: picture bytes in, artifacts and a report out.

The worker pool (the Kafka service), ``sculpt make`` and ``sculpt reproduce`` all call
:func:`run_pipeline`, so a replay runs exactly what production ran. Its body is the stages:

 1. decode       untrusted bytes -> RGB(A) array, limits from ``Settings``
 2. stylize      the configured ``Stylizer``                         -> ``stylized``
 3. reconstruct  the configured ``Reconstructor``, placed in mm once -> ``reconstructed``
 4. mesh         repair, smooth, ~``target_faces`` triangles, GLB (Khronos-validated)
                                                                     -> ``validated``
 5. mold         two-part mold with keys, sprue and vents, gated     -> ``mold_ready``
                 (the preview renders meanwhile on the renderer thread; ``mold_ready``
                 waits for it). With a ``helper`` (``sculpt make``) both are made in that
                 process from the moment the mesh is ready, while the GLB is written.
 6. report       ``report.json``: every stage's facts and the artifacts' sha256

``on_stage`` is called with the ``OrderState`` each stage ends in, when it ends (the
service publishes it then). The artifacts are named by ``sculptsvc.artifacts``.

Determinism: the same picture and options give byte-identical deterministic artifacts
(every random choice is seeded; no wall-clock value goes into them). ``report.json`` lists
their sha256 and is itself identical except for its ``timings`` field (seconds per stage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mold.geometry import indices_out_of_range
from sculptsvc import artifacts
from sculptsvc.errors import (
    InvalidEvent,
    MeshProcessingFailed,
    ModelOutputInvalid,
    NoSubject,
    from_mold_error,
)
from sculptsvc.events import OrderState
from sculptsvc.imaging import decode_image_with_settings, encode_png
from sculptsvc.logging import get_logger
from sculptsvc.options import SHAPE_NEUTRAL, PipelineOptions, options_from_order
from sculptsvc.reconstruct.base import ColoredMesh, Reconstructor, ShapeAdjustable
from sculptsvc.reconstruct.place import place_in_mm
from sculptsvc.report import (
    ArtifactInfo,
    GlbValidation,
    InputInfo,
    MoldSummary,
    PipelineReport,
    ReconstructInfo,
    StylizeInfo,
    report_without_timings,
    rounded_timings,
    software,
)
from sculptsvc.settings import Settings
from sculptsvc.stylize.base import StylizedImage, Stylizer
from sculptsvc.timing import timed

WARM_UP_RADIUS_MM = 20.0
WARM_UP_SEGMENTS = 24
"""The warm-up mold's sphere (:func:`warm_up_mold`): small, but a real mold."""

if TYPE_CHECKING:
    from sculptsvc.workers.helper import StageHelper

log = get_logger(__name__)

ARTIFACT_NAMES = tuple(a.name for a in artifacts.DETERMINISTIC)
"""Byte-identical on every run with the same input and options."""
REPORT_NAME = artifacts.REPORT_JSON.name

StageEnded = Callable[[OrderState], None]

__all__ = [
    "ARTIFACT_NAMES",
    "REPORT_NAME",
    "PipelineOptions",
    "PipelineReport",
    "PipelineResult",
    "options_from_order",
    "place_in_mm",
    "report_without_timings",
    "run_pipeline",
]


@dataclass
class PipelineResult:
    """artifacts: file name -> bytes (``sculptsvc.artifacts.ARTIFACTS``);
    stylized: the stylized picture, encoded only by :meth:`extras` (``sculpt make``)."""

    artifacts: dict[str, bytes]
    report: PipelineReport
    stylized: np.ndarray

    def extras(self) -> dict[str, bytes]:
        """Debugging outputs that are not published (``stylized.png``)."""
        return {artifacts.STYLIZED_NAME: encode_png(self.stylized)}


def run_pipeline(
    image_bytes: bytes,
    options: PipelineOptions,
    stylizer: Stylizer,
    reconstructor: Reconstructor,
    settings: Settings,
    on_stage: StageEnded | None = None,
    helper: StageHelper | None = None,
) -> PipelineResult:
    """Run one order; raises the typed errors of ``sculptsvc.errors`` (reject vs fail).
    ``helper``: the mold and the preview are made in that process (``workers/helper``)."""
    from sculptsvc.gltf_validator import prestart as prestart_validator
    from sculptsvc.mesh import MeshParams, export_glb, process_mesh
    from sculptsvc.mesh.preview import preview_scene, render_preview_async
    from sculptsvc.stylize.subject import hint_from_event

    ended = on_stage or (lambda state: None)
    timings: dict[str, float] = {}
    with timed(timings, "total"):
        # 1. decode
        with timed(timings, "decode"):
            image = decode_image_with_settings(image_bytes, settings)

        # 2. stylize
        with timed(timings, "stylize"):
            styled = stylizer.stylize(
                image, seed=options.seed, hint=hint_from_event(options.subject_hint)
            )
        _check_stylized(styled, stylizer)
        ended(OrderState.stylized)

        # 3. reconstruct (with the order's relief depth and thickness), then millimetres
        #    standing on y = 0 (the only scaling to size_mm)
        reconstructor = shaped_reconstructor(reconstructor, options)
        with timed(timings, "reconstruct"):
            raw = reconstructor.reconstruct(styled, seed=options.seed)
        _check_mesh(raw, reconstructor)
        iou = _silhouette_iou(raw, styled, reconstructor)
        with timed(timings, "place"):
            placed = place_in_mm(raw, options.size_mm)
        ended(OrderState.reconstructed)

        # 4. mesh: one watertight shell, GLB (validated), preview
        if options.validate_glb is not False:
            prestart_validator()  # Node boots on the other core while the mesh is computed
        with timed(timings, "mesh"):
            processed = process_mesh(placed, _mesh_params(MeshParams, options))
        if not processed.report.watertight or processed.report.shells != 1:
            raise MeshProcessingFailed(
                "the processed sculpture is not one watertight shell",
                watertight=processed.report.watertight,
                shells=processed.report.shells,
            )
        mesh_report = processed.report
        vertices = np.array(processed.mesh.vertices)
        faces = np.array(processed.mesh.faces)
        # 5. (with a helper) the mold starts on the other core, around the sculpture as it
        #    is (already in mm); its errors surface at step 5 below, after the GLB's
        pending_mold = helper.submit("mold", (vertices, faces, options)) if helper else None
        with timed(timings, "glb"):
            # the preview renders (on the renderer thread, or in the helper) while the GLB is
            # written: from here on both only read ``processed`` (``prepare_surface``)
            processed.prepare_surface(options.mode, options.color)
            if helper is None:
                preview_job: Any = render_preview_async(
                    processed, mode=options.mode, color_hex=options.color, size=options.preview_size
                )
            else:
                preview_job = helper.submit(
                    "preview",
                    preview_scene(processed, options.mode, options.color, options.preview_size),
                )
            glb = export_glb(processed, mode=options.mode, color_hex=options.color)
        with timed(timings, "validate"):
            validation = _validate(glb, options.validate_glb)
        ended(OrderState.validated)

        # 5. mold, around the sculpture as it is (already in mm)
        if pending_mold is None:
            with timed(timings, "mold"):
                mold = make_mold_for_order(vertices, faces, options)
        else:
            with timed(timings, "mold_wait"):
                mold, timings["mold"] = pending_mold.result()
        with timed(timings, "preview_wait"):
            preview, timings["preview"] = preview_job.result()
        ended(OrderState.mold_ready)

    # 6. report
    files = {
        artifacts.MODEL_GLB.name: glb,
        artifacts.PREVIEW_PNG.name: preview,
        **{name: data for name, data in mold.files().items() if name in artifacts.BY_NAME},
    }
    report = PipelineReport(
        software=software(),
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
        mesh=mesh_report,
        validation=validation,
        mold=_mold_summary(mold.report),
        mold_report=mold.report,
        artifacts={
            name: ArtifactInfo(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
            for name, data in files.items()
        },
        timings=rounded_timings(timings),
    )
    files[REPORT_NAME] = report.to_json_bytes()
    log.info(
        "pipeline done",
        triangles=mesh_report.triangles,
        cavity_ml=mold.report.cavity_volume_ml,
        seconds=report.timings["total"],
    )
    return PipelineResult(artifacts=files, report=report, stylized=styled.rgba)


# --- stage helpers -----------------------------------------------------------------------


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


def mold_request(request: tuple[np.ndarray, np.ndarray, PipelineOptions]) -> Any:
    """The mold helper's job (``StageHelper``): :func:`make_mold_for_order`."""
    return make_mold_for_order(*request)


def warm_up_mold() -> None:
    """The mold helper's start: one small mold while the order is on its early stages. The
    first mold in a process pays ~0.25 s for first calls (manifold3d's and MeshLab's set-up,
    lib3mf's loading); the helper spends it on the idle core. The order's mold comes out
    the same bytes after it."""
    from mold.shapes import sphere

    try:
        make_mold_for_order(*sphere(WARM_UP_RADIUS_MM, WARM_UP_SEGMENTS), PipelineOptions())
    except Exception as exc:  # only ever a warm-up: the order's own mold reports errors
        log.warning("mold_warm_up_failed", error=repr(exc))


def make_mold_for_order(vertices: np.ndarray, faces: np.ndarray, options: PipelineOptions) -> Any:
    """``mold.make_mold`` on the placed sculpture; its errors enter the service's tree."""
    from mold import MoldError, MoldSpec, make_mold

    # size None: the sculpture is already options.size_mm
    spec = MoldSpec(size_mm=None, wall_mm=options.wall_mm, parting=options.parting)
    try:
        return make_mold(np.asarray(vertices), np.asarray(faces), spec)
    except MoldError as exc:
        raise from_mold_error(exc) from exc


def shaped_reconstructor(reconstructor: Reconstructor, options: PipelineOptions) -> Reconstructor:
    """The reconstructor with the order's relief depth and thickness applied; an order that
    asks for them from a backend that cannot build them is rejected, never silently changed."""
    if options.relief_depth == SHAPE_NEUTRAL and options.thickness == SHAPE_NEUTRAL:
        return reconstructor
    if not isinstance(reconstructor, ShapeAdjustable):
        raise InvalidEvent(
            f"reconstructor {reconstructor.name!r} cannot apply shape.relief_depth or "
            "shape.thickness; leave them out (or 1) for this backend",
            relief_depth=options.relief_depth,
            thickness=options.thickness,
        )
    return reconstructor.reshaped(relief_depth=options.relief_depth, thickness=options.thickness)


def _mesh_params(params_cls: Any, options: PipelineOptions) -> Any:
    """The mesh stage's parameters for this order (smoothing: the order's or the default)."""
    smoothing = {} if options.smoothing is None else {"smooth_steps": options.smoothing}
    # mold_size_mm=None: the hand-off check runs as the mold will, on the placed size
    return params_cls(target_faces=options.target_faces, mold_size_mm=None, **smoothing)


def _mold_summary(report: Any) -> MoldSummary:
    return MoldSummary(
        cavity_volume_ml=report.cavity_volume_ml,
        pour_volume_ml=report.pour_volume_ml,
        gate_passed=report.gate.passed,
        parting=report.parting.chosen,
        halves_triangles=(report.halves[0].triangles, report.halves[1].triangles),
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
    if indices_out_of_range(faces, len(vertices)):
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
