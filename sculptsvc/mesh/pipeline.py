"""The mesh stage in order: repair, smooth, triangle budget, report; then UV, bake, GLB.

 1. colours     remember the input's colour carrier (callable, vertex colours, texture)
 2. repair      one watertight, outward-oriented solid, or ``UnrepairableMesh``
 3. smooth      Taubin, every vertex move clamped to ``max_smooth_deviation_rel``
 4. budget      quadric decimation / subdivision to ``target_faces`` +- ``face_tolerance``
 5. check       still closed and oriented, vertex normals present
 6. report      geometry facts + Hausdorff distance to the input
(export_glb)    7. UV atlas  8. bake texture  9. GLB with the silicone material

The UV atlas needs only the final triangles. Given ``unwrap_elsewhere`` (a stage helper on
another core), :func:`process_mesh` sends them there as soon as the budget is met and goes
on with the check and the report; the atlas is used only if the check left the triangles
as they were (else it is made here, on the repaired ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import trimesh

from sculptsvc.errors import MeshProcessingFailed, UnrepairableMesh
from sculptsvc.imaging import encode_png
from sculptsvc.logging import get_logger
from sculptsvc.mesh.colors import (
    color_source_from_visual,
    constant_color_source,
    hex_to_linear_rgb,
    parse_hex,
    vertex_color_source,
)
from sculptsvc.mesh.gltf import METRES_PER_MM, PbrMaterial, build_glb, unit_normals
from sculptsvc.mesh.handoff import (
    HandoffCheck,
    as_stored,
    check_handoff,
    mold_size,
    repair_crossings,
    retriangulate_as_the_mold_counts,
)
from sculptsvc.mesh.params import MeshParams
from sculptsvc.mesh.refine import (
    decimate,
    fit_face_budget,
    refine_to,
    remesh_isotropic,
    smooth,
    within,
)
from sculptsvc.mesh.remesh import voxel_remesh
from sculptsvc.mesh.repair import RepairLog, edge_counts, repair, signed_volume
from sculptsvc.mesh.report import MeshReport, measure
from sculptsvc.mesh.uv import UVAtlas, bake_texture, unwrap
from sculptsvc.options import Mode
from sculptsvc.reconstruct.base import ColoredMesh, ColorSource
from sculptsvc.timing import timed

log = get_logger(__name__)


class AtlasJob(Protocol):
    """An atlas being made elsewhere (``workers.helper.Pending``)."""

    def result(self) -> tuple[UVAtlas, float]:
        """(the atlas, the seconds it took); raises what making it raised."""
        ...


UnwrapElsewhere = Callable[[trimesh.Trimesh], AtlasJob]
"""Starts :func:`~sculptsvc.mesh.uv.unwrap` of a (float32-exact) mesh elsewhere."""


@dataclass
class ProcessedMesh:
    """Output of :func:`process_mesh`.

    mesh: watertight, outward-oriented trimesh (what the mold stage consumes);
    report: the validation report; timings: seconds per step (export steps added lazily);
    color_source: what :func:`export_glb` bakes for ``multicolor`` (None: no colours).
    """

    mesh: trimesh.Trimesh
    report: MeshReport
    timings: dict[str, float]
    params: MeshParams
    color_source: ColorSource | None = None
    _atlas: UVAtlas | None = field(default=None, repr=False)
    _textures: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _atlas_job: AtlasJob | None = field(default=None, repr=False)
    """The atlas of ``mesh`` being made elsewhere (``process_mesh``'s ``unwrap_elsewhere``)."""

    def atlas(self) -> UVAtlas:
        """UV atlas of ``mesh`` (computed once)."""
        if self._atlas is None and self._atlas_job is not None:
            job, self._atlas_job = self._atlas_job, None
            with timed(self.timings, "uv_wait"):
                self._atlas, self.timings["uv"] = job.result()
        if self._atlas is None:
            with timed(self.timings, "uv"):
                self._atlas = unwrap(self.mesh, self.params)
        return self._atlas

    def texture(self, fallback_hex: str | None = None) -> np.ndarray:
        """(size, size, 3) uint8 baked base colour (computed once per fallback colour)."""
        source = self.color_source
        key = "source" if source is not None else (fallback_hex or self.params.default_color_hex)
        if key not in self._textures:
            if source is None:
                source = constant_color_source(key)
            atlas = self.atlas()
            with timed(self.timings, "bake"):
                self._textures[key] = bake_texture(atlas, source, self.params.texture_size)
        return self._textures[key]

    def prepare_surface(self, mode: Mode, fallback_hex: str | None = None) -> None:
        """Compute (once) what both the GLB writer and the preview renderer read: the UV
        atlas and baked texture (multicolor) or the vertex normals (solid). Afterwards both
        only read this mesh, so they may run on two threads (trimesh's caches are not
        thread-safe to fill, only to read)."""
        if mode == "multicolor":
            self.texture(fallback_hex)
        else:
            self.mesh.vertex_normals  # noqa: B018  (fills trimesh's cache)


def to_trimesh(mesh: trimesh.Trimesh | ColoredMesh) -> tuple[trimesh.Trimesh, ColorSource | None]:
    """Accept a reconstructor's ``ColoredMesh`` as well as a trimesh (colours kept apart)."""
    if isinstance(mesh, ColoredMesh):
        tm = trimesh.Trimesh(
            np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64), process=False
        )
        source = mesh.color_source
        if source is None and mesh.vertex_colors is not None:
            source = vertex_color_source(mesh.vertices, mesh.vertex_colors)
        return tm, source
    return mesh, None


def _near_the_origin(
    mesh: trimesh.Trimesh, params: MeshParams
) -> tuple[trimesh.Trimesh, np.ndarray | None]:
    """``mesh`` moved so its box is centred on the origin when it lies farther than
    ``params.recentre_beyond_diagonals`` diagonals away (else as given); and the shift."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) == 0 or not np.isfinite(vertices).all():
        return mesh, None  # repair drops non-finite corners; the mesh is then near enough
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre = 0.5 * (lo + hi)
    diagonal = float(np.linalg.norm(hi - lo))
    if float(np.abs(centre).max()) <= params.recentre_beyond_diagonals * diagonal:
        return mesh, None
    moved = mesh.copy()
    moved.vertices = vertices - centre
    log.info("mesh moved to the origin", from_centre=centre.tolist(), diagonal=diagonal)
    return moved, -centre


_FLOAT32_STEP = 2.0**-23  # spacing of float32 values, relative to their magnitude


def _far_from_the_origin(moved_by: np.ndarray | None, mesh: trimesh.Trimesh) -> str:
    """Why a part that lay far from the origin may have lost its shape before it was read:
    a file storing float32 (STL, GLB) keeps positions there only in coarse steps (a part 1
    unit long, 1e7 from the origin, arrives flat). Empty when that cannot be the reason."""
    if moved_by is None or len(mesh.vertices) == 0:
        return ""
    reach = float(np.abs(moved_by).max())
    step = reach * _FLOAT32_STEP
    if float(np.ptp(mesh.vertices, axis=0).max()) >= 64 * step:
        return ""
    return (
        f" (it lies {reach:.3g} from the origin, where a file storing float32 positions, "
        f"such as STL or GLB, keeps only steps of {step:.2g}: export it near the origin)"
    )


def _shifted(source: ColorSource | None, moved_by: np.ndarray) -> ColorSource | None:
    """A colour field of the input's frame, asked in the moved frame."""
    if source is None:
        return None

    def shifted(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        return source(points - moved_by, normals)

    return shifted


def _vector_text(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.10g}" for x in v) + ")"


def process_mesh(
    mesh: trimesh.Trimesh | ColoredMesh,
    params: MeshParams | None = None,
    color_source: ColorSource | None = None,
    unwrap_elsewhere: UnwrapElsewhere | None = None,
) -> ProcessedMesh:
    """Repair, smooth and resample ``mesh`` into a watertight sculpture of about
    ``params.target_faces`` triangles; raises ``UnrepairableMesh`` or ``MeshProcessingFailed``.

    Colours: ``color_source`` wins; else a ``ColoredMesh``'s colours; else the trimesh's
    vertex colours or texture; else none (``export_glb`` then bakes the order colour).
    ``unwrap_elsewhere``: the UV atlas is started there once the budget is met (for a
    multicolor GLB; the same atlas, made while the check and the report run here).
    """
    params = params or MeshParams()
    timings: dict[str, float] = {}
    source_mesh, carried = to_trimesh(mesh)
    source_mesh, moved_by = _near_the_origin(source_mesh, params)
    if moved_by is not None:
        color_source = _shifted(color_source, moved_by)
        carried = _shifted(carried, moved_by)
    with timed(timings, "colors"):
        if color_source is not None:
            kind = "callable"
        elif isinstance(mesh, ColoredMesh):
            color_source = carried
            if mesh.color_source is not None:
                kind = "callable"
            else:
                kind = "vertex" if carried is not None else "none"
        else:
            color_source, kind = color_source_from_visual(
                source_mesh,
                k=params.color_neighbors,
                samples_per_face=params.texture_samples_per_face,
                uncoloured_hex=params.default_color_hex,
            )
    with timed(timings, "repair"):
        try:
            repaired, repair_log = repair(source_mesh, params)
        except UnrepairableMesh as exc:
            far = _far_from_the_origin(moved_by, source_mesh)
            if not far:
                raise
            raise type(exc)(exc.message + far, **exc.detail) from exc
    if moved_by is not None:
        repair_log.actions.insert(
            0,
            f"moved to the origin from {_vector_text(-moved_by)}: float32 positions cannot hold "
            "the part that far from it",
        )
    with timed(timings, "smooth"):
        smoothed, displacement = smooth(repaired, params)
    with timed(timings, "budget"):
        try:
            final, budget = fit_face_budget(smoothed, params)
        except MeshProcessingFailed as exc:
            # a surface no decimation keeps closed (slivers, near-duplicate sheets): the
            # voxel rebuild gives one that any decimation does
            if not params.remesh_fallback:
                raise
            final, budget, displacement, _ = _rebuilt(repaired, repair_log, params, exc.message)
    atlas_job = None
    if unwrap_elsewhere is not None:
        # the triangles the check below passes unchanged, as the GLB will store them
        sent = as_stored(final)
        atlas_job = unwrap_elsewhere(sent)
    with timed(timings, "self_intersections"):
        final, budget, displacement, crossing = _without_self_intersections(
            final, budget, displacement, repaired, repair_log, params
        )
    if atlas_job is not None and not _same_triangles(final, sent):
        atlas_job = None  # a repair changed them: the atlas is made here, on these
    with timed(timings, "check"):
        # Measured once: the report reuses these instead of counting the edges again.
        edges = edge_counts(final.faces)
        volume = signed_volume(final.vertices, final.faces)
        if edges != (0, 0, 0) or volume <= 0:
            raise MeshProcessingFailed("mesh is no longer a closed, outward solid after refining")
        _ = final.vertex_normals  # computed now, cached on the mesh for every consumer
    with timed(timings, "report"):
        report = measure(
            final,
            source_mesh,
            repair_log,
            smooth_displacement=displacement,
            face_budget=budget,
            color_source=kind,
            hausdorff_samples=params.hausdorff_samples,
            self_intersecting_faces=crossing,
            edges=edges,
            volume=volume,
        )
    timings["process_total"] = sum(timings.values())
    log.info(
        "mesh processed",
        triangles=report.triangles,
        repair=report.repair_method,
        hausdorff_rel=round(report.hausdorff_rel, 5),
        seconds=round(timings["process_total"], 3),
    )
    return ProcessedMesh(
        mesh=final,
        report=report,
        timings=timings,
        params=params,
        color_source=color_source,
        _atlas_job=atlas_job,
    )


def _same_triangles(a: trimesh.Trimesh, b: trimesh.Trimesh) -> bool:
    return np.array_equal(a.faces, b.faces) and np.array_equal(a.vertices, b.vertices)


def _without_self_intersections(
    mesh: trimesh.Trimesh,
    budget: str,
    displacement: float,
    repaired: trimesh.Trimesh,
    repair_log: RepairLog,
    params: MeshParams,
) -> tuple[trimesh.Trimesh, str, float, int]:
    """A surface that passes through itself is closed but not a solid: mold booleans turn
    it inside out. The decision uses the mold's own check on the positions as the GLB
    stores them (:mod:`sculptsvc.mesh.handoff`), so nothing leaves that the mold refuses.

    Repairs, in order. A coarse part (repaired below the budget: a CAD part, a low-poly
    model) first tries its repaired surface unsmoothed: remeshed isotropically
    (:func:`_remeshed_isotropic`: round triangles, flat faces flat, feature edges kept; a
    cone's apex fan, whose bisected slivers cross at float32), else bisected to the budget
    (:func:`_refined_unsmoothed`: exactly the same surface, its slivers kept). Each costs
    about one check, where the local repairs of
    :func:`~sculptsvc.mesh.handoff.repair_crossings` (separate touching surfaces,
    re-triangulate) take seconds on long triangles, and the slivers bisection keeps can
    leave the mold's booleans edges that its STL check refuses (OpenSCAD's issue945f).
    The local repairs come next, and for a part above the budget first, then its
    isotropic remesh. Else rebuild the surface from a voxel field (always embedded),
    smooth and fit the budget again, and re-triangulate what the mold still counts there
    (:func:`~sculptsvc.mesh.handoff.retriangulate_as_the_mold_counts`). Last, where every
    surface at the budget still crosses, the budget gives way (:func:`_thin_walls_kept`).
    A surface that crosses in more than ``crossing_repair_max_faces`` faces passes
    through itself (the plates of an assembly): the local repairs are skipped for it, and
    the unsmoothed refinement when the repaired surface is such a tangle, since neither
    clears one (the rebuild is where those end, after seconds of checks).
    Returns the float32-exact mesh, how the budget was met, the smoothing displacement and
    the crossing count of the returned mesh (the report's figure: counted once).
    """
    mesh = as_stored(mesh)
    check = check_handoff(mesh, params)
    if check.passed:
        return mesh, budget, displacement, 0
    size = mold_size(params)
    scale = "the placed size" if size is None else f"{size:g} mm"
    where = f"the mold's check at {scale} on float32 positions"
    found = check.refusal or f"{check.crossing_faces} triangles crossed the surface"
    remeshed_note = (
        f"{found} ({where}): the repaired surface remeshed isotropically to the budget "
        "instead, unsmoothed (smoothing and refinement left slivers that cross)"
    )
    coarse = len(repaired.faces) < params.target_faces
    if coarse:
        remeshed = _remeshed_isotropic(repaired, params)
        if remeshed is not None:
            repair_log.add(remeshed_note)
            return remeshed, "remeshed (isotropic)", 0.0, 0
        repaired_check = check_handoff(as_stored(repaired), params)  # cached: just asked
        unsmoothed = (
            None if _tangled(repaired_check, params) else _refined_unsmoothed(repaired, params)
        )
        if unsmoothed is not None:
            repair_log.add(
                f"{found} ({where}): the repaired surface refined by longest-edge bisection "
                "instead, unsmoothed (smoothing bent long flat triangles out of their plane)"
            )
            return unsmoothed, "subdivided (longest-edge bisection)", 0.0, 0
    if not _tangled(check, params):
        fixed = _logged(repair_crossings(mesh, params), repair_log, f"{found} ({where})")
        if fixed is not None:
            return fixed, budget, displacement, 0
    remeshed = None if coarse else _remeshed_isotropic(repaired, params)
    if remeshed is not None:
        repair_log.add(remeshed_note)
        return remeshed, "remeshed (isotropic)", 0.0, 0
    if not params.remesh_fallback:
        raise MeshProcessingFailed(
            f"{found} ({where}) and the remesh fallback is off",
            self_intersecting_faces=check.crossing_faces,
        )
    why = f"{found} ({where}); " + (
        "local re-triangulation did not clear it"
        if not _tangled(check, params)
        else f"more than {params.crossing_repair_max_faces}: the surface passes through itself"
    )
    unsmoothed_rebuilds: list[tuple[int, trimesh.Trimesh]] = []
    fell_apart: UnrepairableMesh | None = None
    for resolution in _rebuild_resolutions(params):
        at = params.model_copy(update={"remesh_resolution": resolution})
        try:
            final, budget, displacement, rebuilt = _rebuilt(repaired, repair_log, at, why)
        except UnrepairableMesh as exc:  # thinner than a voxel somewhere: try a finer field
            fell_apart = exc
            continue
        unsmoothed_rebuilds.append((resolution, rebuilt))
        final = as_stored(final)
        check = check_handoff(final, params)
        if check.passed:
            return final, budget, displacement, 0
        # smoothing and the budget can press two close sheets of the rebuilt surface (a
        # thin ear, lips) through each other again: cut out and re-close what the mold
        # counts; failing that, a finer field (a CAD plate only ~7 voxels thick)
        still = check.refusal or f"{check.crossing_faces} triangles crossed the rebuilt surface"
        fixed = _logged(
            retriangulate_as_the_mold_counts(final, params), repair_log, f"{still} ({where})"
        )
        if fixed is not None:
            return fixed, budget, displacement, 0
        why = f"{still} after the {resolution}-voxel rebuild and a local re-triangulation"
    # Next, for parts only a few voxels thick (a wing's trailing edge, the walls of a
    # building): the rebuilt surface unsmoothed, where smoothing pressed its sheets
    # together. Its voxel steps stay; the report's deviation says how far it is.
    for resolution, rebuilt in unsmoothed_rebuilds:
        plain, plain_budget = fit_face_budget(rebuilt, params)
        plain = as_stored(plain)
        check = check_handoff(plain, params)
        done = f"the {resolution}-voxel rebuild taken unsmoothed ({why})"
        if check.passed:
            repair_log.add(done)
            return plain, plain_budget, 0.0, 0
        still = check.refusal or f"{check.crossing_faces} triangles crossed it"
        fixed = _logged(
            retriangulate_as_the_mold_counts(plain, params), repair_log, f"{done}; {still}"
        )
        if fixed is not None:
            return fixed, plain_budget, 0.0, 0
    relieved = _thin_walls_kept(repaired, params)
    if relieved is not None:
        repair_log.add(f"{relieved[1]}: {why}")
        return relieved[0], relieved[1], 0.0, 0
    if fell_apart is not None and not unsmoothed_rebuilds:
        raise fell_apart
    raise MeshProcessingFailed(
        f"{check.refusal or f'{check.crossing_faces} triangles'} still fail {where} "
        "after voxel rebuilds and local re-triangulation",
        self_intersecting_faces=check.crossing_faces,
    )


def _tangled(check: HandoffCheck, params: MeshParams) -> bool:
    """The surface checked crosses in more faces than a local repair clears
    (``crossing_repair_max_faces``): it passes through itself, and neither the local
    repairs nor refining it without smoothing (which keeps every crossing) clear that."""
    return check.crossing_faces > params.crossing_repair_max_faces


def _thin_walls_kept(
    repaired: trimesh.Trimesh, params: MeshParams
) -> tuple[trimesh.Trimesh, str] | None:
    """The repaired surface, unsmoothed, at the fewest triangles (2x, 4x, ... the budget,
    up to ``thin_wall_budget_factor`` x) that pass the mold's check, or None.

    Last resort for a part whose walls are thinner than the budget's triangles (a printer
    bed's ribs a voxel thick): every decimation to the budget, smoothed or not, rebuilt or
    not, presses them through each other, while the repaired surface itself is embedded.
    More triangles than asked are a smaller fault than no mold; the report says how many.
    """
    if len(repaired.faces) <= (1.0 + params.face_tolerance) * params.target_faces:
        return None  # a coarse part: no decimation to blame (it is refined, not relieved)
    limit = params.thin_wall_budget_factor * params.target_faces
    factor, tried = 2.0, 1.0
    while factor <= params.thin_wall_budget_factor and factor * params.target_faces < len(
        repaired.faces
    ):
        target = round(factor * params.target_faces)
        at = params.model_copy(update={"target_faces": target})
        tried = factor
        try:
            candidate = as_stored(decimate(repaired, target, at))
        except MeshProcessingFailed:  # the decimation opened the surface: try more triangles
            factor *= 2.0
            continue
        if check_handoff(candidate, params).passed:
            return candidate, (
                f"decimated to {target} triangles, {factor:g}x the budget: at the budget the "
                "walls, thinner than its triangles, pass through each other"
            )
        factor *= 2.0
    if params.thin_wall_budget_factor > 1.0 and len(repaired.faces) <= limit:
        kept = as_stored(repaired)
        if check_handoff(kept, params).passed:
            at_most = "" if tried == 1.0 else f" and at up to {tried:g}x it"
            return kept, (
                f"kept the repaired surface's {len(kept.faces)} triangles: at the budget"
                f"{at_most}, the walls (thinner than its triangles) pass through each other"
            )
    return None


def _logged(
    repaired: tuple[trimesh.Trimesh, str] | None, repair_log: RepairLog, found: str
) -> trimesh.Trimesh | None:
    """The mesh of a local repair that worked, with what it did logged after ``found``."""
    if repaired is None:
        return None
    fixed, action = repaired
    repair_log.add(f"{found}: {action}")
    return fixed


def _rebuild_resolutions(params: MeshParams) -> list[int]:
    """The voxel fields tried, coarse (fast, smooth) first."""
    finer = params.remesh_retry_resolution
    return [params.remesh_resolution, *([finer] if finer > params.remesh_resolution else [])]


def _rebuilt(
    repaired: trimesh.Trimesh, repair_log: RepairLog, params: MeshParams, why: str
) -> tuple[trimesh.Trimesh, str, float, trimesh.Trimesh]:
    """The repaired surface rebuilt from a voxel field (always closed and embedded), then
    smoothed and fitted to the budget: (mesh, how the budget was met, displacement, the
    rebuilt surface before smoothing).

    Raises ``UnrepairableMesh`` when the rebuilt surface falls apart or encloses nothing:
    the part is thinner than a voxel there, which is the part's shape (an open sheet
    closed along its rim into a pillow, a fin, a membrane), not a failure of this stage.
    """
    resolution = params.remesh_resolution
    remeshed = voxel_remesh(repaired, resolution, params.remesh_closing_voxels)
    try:
        rebuilt, _ = repair(remeshed, params)
    except UnrepairableMesh as exc:
        size = mold_size(params) or float(np.ptp(repaired.vertices, axis=0).max())
        raise UnrepairableMesh(
            f"the part is thinner than {size / resolution:.2g} mm in places: rebuilt from a "
            f"{resolution}-voxel field (to clear {why}), it does not hold together "
            f"({exc.message}). An open sheet closed along its rim, or a thin fin or "
            "membrane, cannot be cast; send a solid with some thickness everywhere",
            resolution=resolution,
        ) from exc
    repair_log.method = "remesh"
    repair_log.add(f"rebuilt from a {params.remesh_resolution}-voxel field: {why}")
    smoothed, displacement = smooth(rebuilt, params)
    final, budget = fit_face_budget(smoothed, params)
    return final, budget, displacement, rebuilt


def _refined_unsmoothed(repaired: trimesh.Trimesh, params: MeshParams) -> trimesh.Trimesh | None:
    """The repaired surface below the budget, brought to it by bisection without smoothing
    (a CAD part's flat faces stay exactly flat), if that passes the mold's check; else None.

    Smoothing a coarse CAD part first moves the corners of its long flat slivers off their
    common plane, and the pieces the budget then cuts them into fail the mold's
    intersection test against each other (two stacked boxes, an open tube closed by two
    fans); local re-triangulation does not clear that, and a voxel rebuild loses the
    edges."""
    count, target = len(repaired.faces), params.target_faces
    if count >= target or within(count, target, params.face_tolerance):
        return None
    refined = as_stored(refine_to(repaired, target, params))
    return refined if check_handoff(refined, params).passed else None


def _remeshed_isotropic(repaired: trimesh.Trimesh, params: MeshParams) -> trimesh.Trimesh | None:
    """The repaired surface remeshed isotropically to the budget
    (:func:`~sculptsvc.mesh.refine.remesh_isotropic`), if that passes the mold's check; else
    None. Tried only on a repaired surface that passes the check itself (a surface that
    crosses itself still does after remeshing) and is not far above the budget."""
    if len(repaired.faces) > params.isotropic_max_faces_factor * params.target_faces:
        return None
    if not check_handoff(as_stored(repaired), params).passed:
        return None
    remeshed = remesh_isotropic(repaired, params)
    if remeshed is None:
        return None
    remeshed = as_stored(remeshed)
    return remeshed if check_handoff(remeshed, params).passed else None


def silicone_material(
    params: MeshParams, base_rgb: tuple[float, float, float], texture_png: bytes | None
) -> PbrMaterial:
    return PbrMaterial(
        name="silicone",
        base_color=(*base_rgb, 1.0),
        metallic=0.0,
        roughness=params.roughness,
        clearcoat=params.clearcoat,
        clearcoat_roughness=params.clearcoat_roughness,
        ior=params.ior,
        texture_png=texture_png,
    )


def export_glb(
    result: ProcessedMesh,
    mode: Mode = "multicolor",
    color_hex: str | None = None,
    *,
    unit_scale: float = METRES_PER_MM,
) -> bytes:
    """GLB bytes of the processed mesh with a silicone PBR material.

    multicolor: UV atlas + baked base-colour texture (the order colour when the input had
    no colours); solid: ``color_hex`` (sRGB) converted to a linear ``baseColorFactor``.
    ``unit_scale`` is metres per mesh unit (0.001: the pipeline works in millimetres).
    Same input, same bytes: QA replays compare sha256.
    """
    params = result.params
    if color_hex is not None:
        parse_hex(color_hex)
    if mode == "solid":
        with timed(result.timings, "glb"):
            mesh = result.mesh
            return build_glb(
                positions=mesh.vertices,
                normals=unit_normals(mesh.vertex_normals),
                faces=mesh.faces,
                material=silicone_material(
                    params, hex_to_linear_rgb(color_hex or params.default_color_hex), None
                ),
                unit_scale=unit_scale,
            )
    if mode != "multicolor":
        raise ValueError(f"mode must be 'multicolor' or 'solid', not {mode!r}")
    atlas = result.atlas()
    texture = result.texture(color_hex)
    with timed(result.timings, "glb"):
        png = encode_png(texture)
        return build_glb(
            positions=atlas.vertices,
            normals=unit_normals(atlas.normals),
            faces=atlas.faces,
            uv=atlas.uv,
            material=silicone_material(params, (1.0, 1.0, 1.0), png),
            unit_scale=unit_scale,
        )
