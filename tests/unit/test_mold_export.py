"""Ray casting, parting helpers and exporters of the mold package, on small fixtures."""

from __future__ import annotations

import hashlib
import io
import zipfile

import manifold3d as m3
import numpy as np
import pytest

from mold import raycast, shapes
from mold.export import MeshObject, parse_stl, read_3mf_strict, stl_bytes, three_mf_bytes
from mold.geometry import (
    TriMesh,
    canonical_float32,
    face_geometry,
    frame_for_direction,
    to_manifold,
    weld_rows,
)
from mold.parting import clear_level
from mold.raycast import vertical_hits


def test_vertical_hits_agree_with_manifold_ray_cast() -> None:
    v, f = shapes.torus(segments=40)
    rng = np.random.default_rng(7)
    for _ in range(3):
        d = rng.normal(size=3)
        rot = frame_for_direction(d)
        tris = (v @ rot.T)[f]
        centroids, normals, _ = face_geometry(tris)
        origins = centroids + 1e-5 * normals
        up, down = vertical_hits(tris, origins)
        rotated = to_manifold(TriMesh(v @ rot.T, f))
        up_ray, down_ray = np.array([0, 0, 10.0]), np.array([0, 0, -10.0])
        for i in range(0, len(origins), 11):
            o = origins[i]
            ref_up = len(rotated.ray_cast(tuple(o), tuple(o + up_ray))) > 0
            ref_down = len(rotated.ray_cast(tuple(o), tuple(o + down_ray))) > 0
            assert (up[i], down[i]) == (ref_up, ref_down)
        assert 0 < up.sum() < len(up)  # a torus hides some faces from every direction


def test_few_rays_among_many_triangles_give_the_same_hits_with_the_box_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below ``_FILTER_TRIS_PER_RAY`` rays per triangle, triangles whose box holds no ray
    are skipped; rays on box edges and corners (through vertices) must keep theirs."""
    v, f = shapes.torus(segments=160)
    rot = frame_for_direction(np.array([0.2, -0.4, 0.9]))
    tris = (v @ rot.T)[f]
    centroids, normals, _ = face_geometry(tris)
    rng = np.random.default_rng(3)
    picked = rng.choice(len(f), 60, replace=False)
    through_vertices = tris[picked[:20], 0] + np.array([0.0, 0.0, 1e-3])
    origins = np.concatenate([centroids[picked] + 1e-5 * normals[picked], through_vertices])
    assert len(tris) > raycast._FILTER_TRIS_PER_RAY * len(origins)  # the filtered path
    filtered = vertical_hits(tris, origins)
    monkeypatch.setattr(raycast, "_FILTER_TRIS_PER_RAY", 10**12)
    unfiltered = vertical_hits(tris, origins)
    assert all(np.array_equal(a, b) for a, b in zip(filtered, unfiltered, strict=True))
    rotated = to_manifold(TriMesh(v @ rot.T, f))
    reach = np.array([0.0, 0.0, 10.0])
    for i in range(60):
        o = origins[i]
        assert filtered[0][i] == (len(rotated.ray_cast(tuple(o), tuple(o + reach))) > 0)
        assert filtered[1][i] == (len(rotated.ray_cast(tuple(o), tuple(o - reach))) > 0)
    assert 0 < filtered[0].sum() < len(origins)


def _hits_one_triangle_at_a_time(
    tris: np.ndarray, origins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The same exact test as ``vertical_hits``, every ray against every triangle."""
    up = np.zeros(len(origins), dtype=bool)
    down = np.zeros(len(origins), dtype=bool)
    scale = float(np.ptp(tris[:, :, :2].reshape(-1, 2), axis=0).max())
    for a, b, c in tris:
        e1, e2 = b - a, c - a
        den = e1[0] * e2[1] - e2[0] * e1[1]
        if abs(den) <= raycast._MIN_PROJECTED_AREA * scale * scale:
            continue
        rx, ry = origins[:, 0] - a[0], origins[:, 1] - a[1]
        u = (rx * e2[1] - e2[0] * ry) / den
        v = (e1[0] * ry - rx * e1[1]) / den
        eps = raycast._INTERIOR_EPS
        inside = (u > eps) & (v > eps) & (u + v < 1.0 - eps)
        z = a[2] + u * e1[2] + v * e2[2]
        up |= inside & (z > origins[:, 2])
        down |= inside & (z < origins[:, 2])
    return up, down


def test_slivers_and_bunched_rays_give_the_hits_of_a_full_search() -> None:
    """A refined printer bed: long slivers spanning the plate, and most rays crowded in one
    corner (where its faces are small). The grid follows slivers row by row and refines
    while that sets up less work (14 s and 3.9 GB of pairs there before); both only prune
    candidates, so every ray still gets exactly the answer of testing every triangle."""
    rng = np.random.default_rng(11)
    slivers = rng.uniform(0.0, 50.0, size=(40, 1, 3)) + np.zeros((40, 3, 3))
    slivers[:, 1] += rng.uniform(-50.0, 50.0, size=(40, 3))
    slivers[:, 2] = slivers[:, 1] + rng.uniform(-0.3, 0.3, size=(40, 3))
    crowd = rng.uniform(0.0, 2.0, size=(400, 1, 3)) + rng.uniform(-0.05, 0.05, size=(400, 3, 3))
    tris = np.concatenate([slivers, crowd])
    origins = np.concatenate(
        [rng.uniform(0.0, 2.0, size=(1500, 3)), rng.uniform(0.0, 50.0, size=(100, 3))]
    )
    origins[:40, :2] = tris[400:440, 0, :2]  # some rays through corners of the crowd
    got = vertical_hits(tris, origins)
    want = _hits_one_triangle_at_a_time(tris, origins)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert 0 < want[0].sum() < len(origins) and want[1].any()


def test_vertical_hits_stacked_squares() -> None:
    square = np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0]], [[0, 0, 0], [1, 1, 0], [0, 1, 0]]], float)
    tris = np.concatenate([square, square + np.array([0, 0, 2.0])])
    origins = np.array([[0.3, 0.6, 1.0], [0.3, 0.6, 3.0], [0.3, 0.6, -1.0], [5.0, 5.0, 1.0]])
    up, down = vertical_hits(tris, origins)
    assert up.tolist() == [True, False, True, False]
    assert down.tolist() == [True, True, False, False]


def test_frame_maps_direction_to_z_and_is_a_rotation() -> None:
    for d in ([0, 0, 1], [1, 0, 0], [0.3, -0.5, 0.8], [0, 0, -1]):
        rot = frame_for_direction(np.array(d, float))
        assert rot @ (np.array(d) / np.linalg.norm(d)) == pytest.approx([0, 0, 1])
        assert rot @ rot.T == pytest.approx(np.eye(3))
        assert np.linalg.det(rot) == pytest.approx(1.0)


def test_clear_level_keeps_off_vertices() -> None:
    heights = np.array([-1.0, 0.0, 0.0, 2.0])
    assert abs(clear_level(0.0, heights, 1e-3, 0.5)) == pytest.approx(1e-3)
    assert clear_level(0.5, heights, 1e-3, 0.5) == 0.5
    dense = np.linspace(-1, 1, 100_001)  # gaps of 2e-5: none wide enough, take the middle
    moved = clear_level(0.0, dense, 1e-3, 0.5)
    assert np.min(np.abs(dense - moved)) > 0


def test_weld_rows_matches_numpy_unique() -> None:
    rng = np.random.default_rng(1)
    pts = rng.integers(0, 5, size=(500, 3)).astype(np.float32)
    uniq, inverse = weld_rows(pts)
    ref, ref_inv = np.unique(pts, axis=0, return_inverse=True)
    assert np.array_equal(uniq, ref) and np.array_equal(inverse, ref_inv.ravel())


def test_canonical_mesh_ignores_input_order() -> None:
    v, f = shapes.sphere(1.0, 24)
    perm = np.random.default_rng(3).permutation(len(v))
    inv = np.argsort(perm)
    shuffled = TriMesh(v[perm], inv[f][::-1][:, [1, 2, 0]])
    a = canonical_float32(TriMesh(v, f))
    b = canonical_float32(shuffled)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_stl_bytes_layout_and_round_trip() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    data = stl_bytes(v, np.array([[0, 1, 2]]), "sculptsvc test")
    assert len(data) == 84 + 50
    assert data[:14] == b"sculptsvc test" and data[80:84] == (1).to_bytes(4, "little")
    assert np.frombuffer(data[84:96], "<f4").tolist() == [0.0, 0.0, 1.0]  # the normal
    assert np.array_equal(parse_stl(data)[0], v)
    with pytest.raises(ValueError):
        stl_bytes(v, np.array([[0, 1, 2]]), "solid name")
    with pytest.raises(ValueError):
        parse_stl(data[:-1])


def test_three_mf_is_deterministic_strict_and_in_millimetres() -> None:
    mesh = m3.Manifold.cube((10.0, 20.0, 5.0)).to_mesh()
    obj = MeshObject("cube", mesh.vert_properties[:, :3], mesh.tri_verts, (1.0, 2.0, 0.0))
    first = three_mf_bytes([obj], 6)
    second = three_mf_bytes([obj], 6)
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    rep = read_3mf_strict(first)
    assert rep.unit == "MilliMeter" and rep.build_items == 1 and rep.warnings == 0
    assert rep.objects[0].triangles == 12 and rep.objects[0].manifold_and_oriented
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        model = z.read("3D/3dmodel.model").decode()
        assert all(info.date_time == (1980, 0, 0, 0, 0, 0) for info in z.infolist())
    assert 'unit="millimeter"' in model and 'transform="1 0 0 0 1 0 0 0 1 1 2 0"' in model


def test_canonical_mesh_drops_triangles_float32_collapses() -> None:
    # (1 + 1e-9, 0, 0) and (1, 0, 0) are one float32 position: triangle 1 loses an edge
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1 + 1e-9, 0, 0]], dtype=np.float64)
    for faces in ([[0, 1, 2], [1, 2, 3]], [[0, 1, 2], [3, 2, 1]], [[0, 1, 2], [2, 3, 1]]):
        verts, kept = canonical_float32(TriMesh(v, np.array(faces)))
        assert len(verts) == 3 and len(kept) == 1
        assert verts[kept[0]].tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]  # winding kept
