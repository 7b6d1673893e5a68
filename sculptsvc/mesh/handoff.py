"""The hand-off check: would the mold accept this mesh exactly as the GLB stores it?

The mesh stage and the mold used to count self-intersections differently (input scale vs
the mold's scale, float64 vs the GLB's float32 positions), so a mesh could leave the mesh
stage "clean" and be refused by ``sculpt mold``. Here there is one check,
:func:`mold.part_self_intersections`, run at the mold's scale on the arrays the mold will
be given (:func:`mold_input`): the pipeline's own float32 positions in mm, or, for a GLB
that ``sculpt mold`` will read, those positions as its reader yields them (times the
node's 0.001 in float64, welded as it welds), bit for bit.

When it finds crossings the mesh is repaired locally: the refused faces and a few rings of
neighbours are cut out and the holes closed again (pymeshlab), a few rounds at most. The
caller falls back to the voxel rebuild when that does not end clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymeshlab
import trimesh

from mold import (
    MoldError,
    MoldSpec,
    PartDisconnected,
    crossing_triangles,
    part_self_intersections,
)
from mold.geometry import (
    TriMesh,
    meshlab_crossing_flags,
    self_intersecting_faces,
    self_intersecting_mask,
)
from sculptsvc.mesh.geometry_read import merge_close_vertices, transformed_as_trimesh
from sculptsvc.mesh.gltf import METRES_PER_MM
from sculptsvc.mesh.params import MeshParams
from sculptsvc.mesh.repair import diagonal, is_closed_manifold, signed_volume
from sculptsvc.mesh.report import hausdorff

_SEPARATION_ULPS = (4, 16, 64)  # float32 steps: far below any visible or printable detail
_MATCH_TOLERANCE_REL = 1e-6  # x the diagonal: a float32 step and the frame change's rounding


def mold_size(params: MeshParams) -> float | None:
    """Longest side the mold will scale the part to (mm); None: kept as it is."""
    return params.mold_size_mm


def _mold_scale(vertices: np.ndarray, params: MeshParams) -> float:
    """The factor the mold applies to these positions."""
    size = mold_size(params)
    return 1.0 if size is None else size / float(np.ptp(vertices, axis=0).max())


def mold_input(mesh: trimesh.Trimesh, params: MeshParams) -> tuple[np.ndarray, np.ndarray]:
    """The vertices and faces the mold will check, for a float32-exact ``mesh`` in mm.

    No mold size (the pipeline): the mold gets these very arrays. A size (``sculpt mesh``,
    whose GLB ``sculpt mold`` reads): the GLB's positions times its node scale, in float64,
    then trimesh's weld, exactly as ``sculpt mold`` reads the file
    (:mod:`~sculptsvc.mesh.geometry_read`; the seam copies the GLB adds weld back to
    these vertices). Faces keep their order, so a per-face result maps back to ``mesh``.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if mold_size(params) is None:
        return vertices, faces
    node = np.diag([METRES_PER_MM, METRES_PER_MM, METRES_PER_MM, 1.0])
    read = transformed_as_trimesh(vertices, faces, node)
    if read is None:  # a non-finite matrix: cannot happen for the constant above
        raise ValueError("the GLB node matrix is not finite")
    return merge_close_vertices(*read)


def as_stored(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh with its positions rounded to float32, as the GLB stores them."""
    stored = np.asarray(mesh.vertices, dtype=np.float32).astype(np.float64)
    return trimesh.Trimesh(stored, np.asarray(mesh.faces, dtype=np.int64), process=False)


@dataclass(frozen=True)
class HandoffCheck:
    """What the mold's check says about a mesh: crossing faces, or why it refused it."""

    crossing_faces: int
    refusal: str = ""  # the mold error's code and message when it refused for another reason

    @property
    def passed(self) -> bool:
        return self.crossing_faces == 0 and not self.refusal


def check_handoff(mesh: trimesh.Trimesh, params: MeshParams) -> HandoffCheck:
    """Run the mold's own self-intersection check on ``mesh`` (already float32-exact), on
    the arrays the mold will get (:func:`mold_input`)."""
    spec = MoldSpec(size_mm=mold_size(params))
    vertices, faces = mold_input(mesh, params)
    try:
        return HandoffCheck(part_self_intersections(vertices, faces, spec))
    except PartDisconnected:  # allowed by max_parts > 1; the mold says so itself
        scale = _mold_scale(vertices, params)
        return HandoffCheck(self_intersecting_faces(TriMesh(vertices * scale, faces)))
    except MoldError as err:  # e.g. float32 rounding pinched the surface
        return HandoffCheck(0, f"{err.code}: {err.message}")


def crossing_mask(mesh: trimesh.Trimesh, params: MeshParams) -> np.ndarray:
    """Per face of ``mesh``, whether the mold's own check counts it as crossing.

    The check runs in the mold's frame (centred, scaled); its faces are found again here
    by their corners (each within a float32 step of one of ours). A crossing face that is
    no face of ours (the mold united overlapping shells first) selects our faces around
    the corners that do match.
    """
    vertices, faces = mold_input(mesh, params)  # same faces, in the same order, as mesh's
    spec = MoldSpec(size_mm=mold_size(params))
    try:
        crossing = crossing_triangles(vertices, faces, spec)
    except MoldError:  # refused before counting (several parts allowed): as check_handoff
        scale = _mold_scale(vertices, params)
        return self_intersecting_mask(TriMesh(vertices * scale, faces))
    if len(crossing) == 0:
        return np.zeros(len(faces), dtype=bool)
    from scipy.spatial import cKDTree

    distance, nearest = cKDTree(vertices).query(crossing.reshape(-1, 3))
    tolerance = _MATCH_TOLERANCE_REL * diagonal(vertices)
    matched = (distance <= tolerance).reshape(-1, 3)
    corners = nearest.reshape(-1, 3)
    n = len(vertices)

    def keys(rows: np.ndarray) -> np.ndarray:
        rows = np.sort(rows, axis=1)
        return (rows[:, 0] * n + rows[:, 1]) * n + rows[:, 2]

    own = keys(faces)
    whole = matched.all(axis=1)
    mask = np.isin(own, keys(corners[whole]))
    found = np.isin(keys(corners[whole]), own)
    if not found.all() or not whole.all():
        loose = np.unique(
            np.concatenate([corners[whole][~found].ravel(), corners[~whole][matched[~whole]]])
        )
        mask |= np.isin(faces, loose).any(axis=1)
    return mask


def _crossing_selection(
    mesh: trimesh.Trimesh, params: MeshParams, *, mold_frame: bool = False
) -> pymeshlab.MeshSet:
    """A MeshSet of ``mesh`` at the mold's scale with the crossing faces selected: by
    pymeshlab's test on these positions, or (``mold_frame``) the faces the mold's own check
    counts in its centred frame (:func:`crossing_mask`)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    scale = _mold_scale(vertices, params)
    faces = np.asarray(mesh.faces, dtype=np.int32)
    ms = pymeshlab.MeshSet()
    if mold_frame:
        selected = crossing_mask(mesh, params).astype(np.float64)
    else:
        selected = meshlab_crossing_flags(vertices * scale, faces).astype(np.float64)
    ms.add_mesh(pymeshlab.Mesh(vertices * scale, faces, f_scalar_array=selected))
    ms.compute_selection_by_condition_per_face(condselect="fq > 0.5")
    return ms


def separate_crossings(
    mesh: trimesh.Trimesh, params: MeshParams, ulps: int
) -> tuple[trimesh.Trimesh, int, float] | None:
    """Move the corners of crossing faces inward along their normals by ``ulps`` float32
    steps of the largest coordinate: two surfaces that touch only through rounding (a
    gap of less than a float32 step) come apart without any visible change.

    Returns (mesh, vertices moved, distance moved) or ``None`` when nothing crosses.
    """
    ms = _crossing_selection(mesh, params)
    selected = ms.current_mesh().face_selection_array()
    if not selected.any():
        return None
    corners = np.unique(np.asarray(mesh.faces)[selected])
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    step = float(np.spacing(np.float32(np.abs(vertices).max()))) * ulps
    normals = trimesh.Trimesh(vertices, mesh.faces, process=False).vertex_normals
    moved = vertices.copy()
    moved[corners] -= step * normals[corners]
    return as_stored(trimesh.Trimesh(moved, mesh.faces, process=False)), len(corners), step


def retriangulate_crossings(
    mesh: trimesh.Trimesh, params: MeshParams, *, mold_frame: bool = False
) -> trimesh.Trimesh | None:
    """Cut out the faces that cross the surface (plus ``crossing_repair_rings`` rings) and
    close the holes; ``None`` when the result is not a closed, outward solid.

    The selection runs at the mold's scale, as the check does; the result is float32-exact.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    scale = _mold_scale(vertices, params)
    ms = _crossing_selection(mesh, params, mold_frame=mold_frame)
    if ms.current_mesh().selected_face_number() == 0:
        return None
    for _ in range(params.crossing_repair_rings):
        ms.apply_selection_dilatation()
    ms.meshing_remove_selected_vertices_and_faces()
    ms.meshing_remove_unreferenced_vertices()
    ms.meshing_repair_non_manifold_edges(method="Remove Faces")
    ms.meshing_repair_non_manifold_vertices()
    # as in repair: the first pass refuses fills that would cross, a second closes the rest
    for refuse_crossing in (True, False):
        ms.meshing_close_holes(
            maxholesize=params.max_hole_edges,
            newfaceselected=False,
            selfintersection=refuse_crossing,
        )
    out = ms.current_mesh()
    faces = np.asarray(out.face_matrix(), dtype=np.int64)
    if len(faces) == 0 or not is_closed_manifold(faces):
        return None
    fixed = as_stored(
        trimesh.Trimesh(np.asarray(out.vertex_matrix()) / scale, faces, process=False)
    )
    fixed.remove_unreferenced_vertices()
    volume = signed_volume(fixed.vertices, fixed.faces)
    if volume == 0:
        return None
    if volume < 0:
        fixed.invert()
    if deviation(fixed, mesh) > params.crossing_repair_max_deviation_rel * diagonal(vertices):
        return None
    return fixed


def retriangulate_as_the_mold_counts(
    mesh: trimesh.Trimesh, params: MeshParams
) -> tuple[trimesh.Trimesh, str] | None:
    """Re-triangulation around the faces the mold's check counts in its own (centred)
    frame: the last local repair, for a voxel rebuild that still crosses. Selected in the
    mesh's own frame, rounding can pick none of them: on two public character scans (an
    ogre, a beast) the check counted 3 faces and the selection found none. No corner
    moves by float32 steps here: a fix that small can flip on the GLB reader's rounding."""
    return _retriangulated(mesh, params, mold_frame=True)


def _retriangulated(
    mesh: trimesh.Trimesh, params: MeshParams, *, mold_frame: bool
) -> tuple[trimesh.Trimesh, str] | None:
    """Up to ``crossing_repair_rounds`` rounds of :func:`retriangulate_crossings`, until
    the mold's check passes; (mesh, what was done) or ``None``."""
    faces_named = "the faces the mold counts" if mold_frame else "crossing faces"
    candidate = mesh
    for round_ in range(1, params.crossing_repair_rounds + 1):
        fixed = retriangulate_crossings(candidate, params, mold_frame=mold_frame)
        if fixed is None:
            return None
        candidate = fixed
        if check_handoff(candidate, params).passed:
            return candidate, (
                f"re-triangulated around {faces_named} in {round_} round(s), "
                f"now {len(candidate.faces)} triangles"
            )
    return None


def deviation(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    """Symmetric Hausdorff distance between two surfaces (the report's vertex sampling)."""
    (ab, _), (ba, _) = hausdorff(a, b, samples=0)
    return max(ab, ba)


def repair_crossings(
    mesh: trimesh.Trimesh, params: MeshParams
) -> tuple[trimesh.Trimesh, str] | None:
    """Local repairs of a mesh the mold's check refuses, cheapest first; (mesh, what was
    done) for the first that passes the check, ``None`` when the caller must rebuild.

    1. separate: corners of crossing faces moved inward by 4, 16, then 64 float32 steps
       (surfaces that only meet through rounding);
    2. re-triangulate: crossing faces and ``crossing_repair_rings`` rings cut out, holes
       closed, up to ``crossing_repair_rounds`` times, each within the deviation limit.
    """
    for ulps in _SEPARATION_ULPS:
        separated = separate_crossings(mesh, params, ulps)
        if separated is None:
            break
        candidate, count, step = separated
        if check_handoff(candidate, params).passed:
            return candidate, (
                f"moved {count} corners of crossing faces {step * 1e3:.3g} um inward "
                "(surfaces touching through float32 rounding)"
            )
    return _retriangulated(mesh, params, mold_frame=False)
