"""Exact confirmation of pymeshlab's self-intersection flags: false flags on near-coplanar
faces sharing a vertex go, real crossings stay, nothing is ever added."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

import mold.core
import mold.exact
from mold.exact import _cones_meet, _exact_points, _triangles_meet, confirmed_crossings
from mold.geometry import TriMesh, self_intersecting_mask
from sculptsvc.mesh import MeshParams
from sculptsvc.mesh.handoff import as_stored, check_handoff, mold_input, mold_size
from sculptsvc.mesh.refine import refine_to
from sculptsvc.mesh.repair import repair


def points(*rows: tuple[float, float, float]) -> list[tuple[int, int, int]]:
    return _exact_points(np.array(rows, dtype=np.float64))


def test_faces_sharing_a_vertex_meet_only_when_a_direction_points_into_both() -> None:
    v, a, b, c, d = points((0, 0, 0), (1, 0, 0), (0, 1, 0), (-1, 0.001, 0), (0.5, 0.5, 0))
    assert not _cones_meet(v, [a, b], [c, points((-1, -1, 0))[0]])  # sectors apart, coplanar
    assert _cones_meet(v, [a, b], [d, c])  # coplanar, overlapping: a fold
    # a hair off the plane, apart: nearly coplanar is not crossing
    assert not _cones_meet(v, [a, b], [points((-1, 0, 1e-9))[0], points((-1, -1, 1e-9))[0]])
    pierce = points((0.3, 0.3, 1), (0.3, 0.3, -1))
    assert _cones_meet(v, [a, b], pierce)  # through the other face's inside


def test_triangles_without_a_shared_vertex() -> None:
    t = points((0, 0, 0), (2, 0, 0), (0, 2, 0))
    piercing = points((0.5, 0.5, -1), (0.5, 0.5, 1), (3, 3, 0.5))
    above = points((0.5, 0.5, 0.1), (1, 0.5, 0.1), (0.5, 1, 0.2))
    coplanar = points((3, 3, 0), (4, 3, 0), (3, 4, 0))
    assert _triangles_meet(t, piercing) is True
    assert _triangles_meet(t, above) is False
    assert _triangles_meet(t, coplanar) is None  # not decided here: the flag stays


def test_confirmation_only_removes_flags() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    flagged = np.random.default_rng(0).random(len(mesh.faces)) < 0.3
    kept = confirmed_crossings(mesh.vertices, mesh.faces, flagged)
    assert not (kept & ~flagged).any()
    assert not kept.any()  # a convex sphere crosses nowhere


def test_a_real_crossing_stays_flagged() -> None:
    """A box with one corner pushed through the opposite face."""
    box = trimesh.creation.box(extents=(10, 10, 10))
    vertices = np.array(box.vertices)
    corner = int(np.argmax(vertices.sum(axis=1)))
    vertices[corner] = (-8.0, -8.0, -8.0)
    mask = self_intersecting_mask(TriMesh(vertices, np.asarray(box.faces)))
    assert mask.any()


def test_a_bisected_uv_sphere_passes_the_molds_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CAD sphere (pole fans of long thin triangles) refined by longest-edge bisection to
    the budget, in float32: pymeshlab alone flags faces that meet only at a shared vertex,
    which sent such parts to the voxel rebuild (4 s, edges rounded)."""
    params = MeshParams(mold_size_mm=80.0)
    sphere = trimesh.creation.uv_sphere(radius=15.5, count=[24, 24])
    sphere.apply_translation([20.0, 20.0, 15.5])
    refined = as_stored(refine_to(sphere, params.target_faces, params))
    assert check_handoff(refined, params).passed
    monkeypatch.setattr(mold.exact, "MAX_CONFIRMED_FACES", 0)  # pymeshlab's flags as they are
    monkeypatch.setattr(mold.core, "_checked_parts", type(mold.core._checked_parts)())
    assert check_handoff(refined, params).crossing_faces > 0


def _all_exact(vertices: np.ndarray, faces: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """The confirmation without floating-point filters: every face whose box overlaps a
    flagged face's is tested in exact arithmetic."""
    points = _exact_points(vertices)
    corners = vertices[faces]
    low, high = corners.min(axis=1), corners.max(axis=1)
    kept = flagged.copy()
    for f in np.flatnonzero(flagged):
        near = np.flatnonzero(np.all((low <= high[f]) & (high >= low[f]), axis=1))
        if not any(mold.exact._may_cross(faces[f], faces[g], points) for g in near if g != f):
            kept[f] = False
    return kept


def _interpenetrating_spheres() -> trimesh.Trimesh:
    a = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    b = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    b.apply_translation((12.0, 0.0, 0.0))
    return trimesh.util.concatenate([a, b])


def test_the_floating_point_filters_decide_as_exact_arithmetic_does() -> None:
    """Pairs proven apart or crossing in floating point (Shewchuk's error bound) skip the
    exact test; what the confirmation keeps must be what testing every pair exactly keeps:
    two spheres through each other (crossing and clear faces flagged at random), and a
    cone's apex fan bisected to the budget in float32 (slivers that meet only at the apex,
    and some that cross)."""
    spheres = _interpenetrating_spheres()
    rng = np.random.default_rng(1)
    flagged = rng.random(len(spheres.faces)) < 0.5
    v, f = np.asarray(spheres.vertices, dtype=np.float64), np.asarray(spheres.faces)
    kept = confirmed_crossings(v, f, flagged)
    assert np.array_equal(kept, _all_exact(v, f, flagged))
    assert 0 < kept.sum() < flagged.sum()  # both outcomes occur

    from mold import MoldParams, MoldSpec
    from mold.geometry import meshlab_crossing_flags

    params = MeshParams()
    cone, _ = repair(trimesh.creation.cone(radius=20.0, height=40.0, sections=64), params)
    fan = as_stored(refine_to(cone, params.target_faces, params))
    # the arrays the mold's check tests: its part, centred and scaled as the mesh stage asks
    spec = MoldSpec(size_mm=mold_size(params))
    part = mold.core.scaled_part(*mold_input(fan, params), spec, MoldParams())
    v, f = part.mesh.vertices, part.mesh.faces
    flagged = meshlab_crossing_flags(v, f)
    assert flagged.sum() > 0
    assert np.array_equal(confirmed_crossings(v, f, flagged), _all_exact(v, f, flagged))

    # Sharing a vertex, a face of no area counts as meeting (collinear corners, or two
    # corners at one place): the plane test alone would call the pair apart.
    v = np.array([(0, 0, 0), (1, 0, 1), (2, 0, 2), (1, 0, 0), (0, 1, 0), (1, 0, 1)], float)
    for faces in ([[0, 1, 2], [0, 3, 4]], [[0, 1, 5], [0, 3, 4]]):
        f = np.array(faces)
        both = np.ones(2, dtype=bool)
        assert np.array_equal(confirmed_crossings(v, f, both), _all_exact(v, f, both))
        assert confirmed_crossings(v, f, both).all()


def test_a_certified_orientation_never_contradicts_the_exact_one() -> None:
    """Random points on, near (one float step) and off random planes: every sign the
    filter certifies is the exact sign, and points exactly on a plane are never certified."""
    rng = np.random.default_rng(7)
    n = 4000
    a, b, c = (rng.normal(size=(n, 3)) * 50.0 for _ in range(3))
    s, t = rng.random((2, n, 1))
    on = a + s * (b - a) + t * (c - a)  # on the plane, up to rounding
    nudge = np.nextafter(on, on + rng.choice([-1.0, 1.0], size=(n, 3)))
    off = on + rng.normal(size=(n, 3)) * 1e-9
    corners = np.stack([a, b, c], axis=1)
    for d in (on, nudge, off, rng.normal(size=(n, 3)) * 50.0):
        signs = mold.exact._certified_orient(a, b, c, d)
        for i in np.flatnonzero(signs).tolist():
            pa, pb, pc, pd = _exact_points(np.vstack([corners[i], d[i]]))
            assert signs[i] == np.sign(mold.exact._orient(pa, pb, pc, pd)) * _orientation_flip()
    # exactly representable coplanar points (a flat part's top face): never certified
    flat = rng.integers(-100, 100, size=(n, 4, 3)).astype(np.float64)
    flat[:, :, 2] = 5.0
    assert not mold.exact._certified_orient(flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3]).any()


def _orientation_flip() -> int:
    """Shewchuk's orient3d(a, b, c, d) and ``_orient(a, b, c, d)`` differ by a fixed sign."""
    a, b, c, d = [*np.eye(3).tolist(), [0.0, 0.0, 0.0]]
    certified = mold.exact._certified_orient(*(np.array([p]) for p in (a, b, c, d)))[0]
    exact = mold.exact._orient(*_exact_points(np.array([a, b, c, d])))
    return int(certified) * int(np.sign(exact))


_NEAR_COPLANAR_PAIR = """
import json
import numpy as np
import pymeshlab
import mold.geometry
from mold.geometry import meshlab_crossing_flags

mold.geometry.CROSSING_FLAGS_KEPT = 0  # ask MeshLab every time, not the remembered answers
vertices = np.array([
    (0.1659355324649926, 0.6191658511604792, 1.9437617040137142e-05),
    (0.8169605424354319, 0.1350876934777897, 2.3688905018055673e-05),
    (0.5449458616380057, 0.7336871327932715, 2.8688390962648188e-05),
    (0.40301759618253297, 0.27004624121174114, 1.803104079816958e-05),
    (0.3722804106701103, 0.5416985188371095, 2.2083737262348514e-05),
    (0.6866603732129266, 0.5591752217557668, 2.843182645457454e-05),
])
faces = np.array([[0, 1, 2], [3, 4, 5]])
seen = []
for _ in range(2):  # a fresh process, then one whose MeshLab has filled holes 6 times
    seen.append(meshlab_crossing_flags(vertices, faces).tolist())
    seen.append(meshlab_crossing_flags(vertices, faces[::-1])[::-1].tolist())
    ring = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.0]])
    for _ in range(6):
        ms = pymeshlab.MeshSet()
        ms.add_mesh(pymeshlab.Mesh(ring, np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])))
        ms.meshing_close_holes(maxholesize=30)
print(json.dumps(seen))
"""


def test_meshlab_flags_do_not_depend_on_face_order_or_on_what_the_process_did_before() -> None:
    """Two nearly coplanar overlapping triangles that MeshLab's one-way test flags in one
    face order only (in a fresh process); after a few hole fills MeshLab tests both ways.
    The flags must be the same in all four cases, or the mesh stage and a separate
    ``sculpt mold`` process disagree."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _NEAR_COPLANAR_PAIR], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert all(flags == seen[0] for flags in seen), seen


def test_crossing_flags_are_remembered_per_exact_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same arrays again get the same flags without MeshLab; any other arrays (one
    coordinate one float step away) are tested. The caller may change what it gets back."""
    from collections import OrderedDict

    import pymeshlab

    import mold.geometry
    from mold.geometry import meshlab_crossing_flags

    spheres = _interpenetrating_spheres()
    vertices, faces = np.asarray(spheres.vertices, dtype=np.float64), np.asarray(spheres.faces)
    tested = []
    real_mesh_set = pymeshlab.MeshSet

    def counting_mesh_set() -> pymeshlab.MeshSet:
        tested.append(1)
        return real_mesh_set()

    monkeypatch.setattr(pymeshlab, "MeshSet", counting_mesh_set)
    monkeypatch.setattr(mold.geometry, "_crossing_flags_seen", OrderedDict())
    first = meshlab_crossing_flags(vertices, faces)
    assert len(tested) == 2 and 0 < first.sum() < len(faces)  # both face orders
    first[:] = False
    again = meshlab_crossing_flags(vertices.copy(), faces.astype(np.int32))
    assert len(tested) == 2 and np.array_equal(again, meshlab_crossing_flags(vertices, faces))
    assert again.sum() > 0
    nudged = vertices.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.inf)
    meshlab_crossing_flags(nudged, faces)
    assert len(tested) == 4
    monkeypatch.setattr(mold.geometry, "CROSSING_FLAGS_KEPT", 0)
    meshlab_crossing_flags(vertices + 1.0, faces)
    meshlab_crossing_flags(vertices + 1.0, faces)
    assert len(tested) == 8
