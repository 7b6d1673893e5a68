"""Repair: holes, flipped faces, debris, membranes, several shells, and typed rejections."""

from __future__ import annotations

from pathlib import Path

import manifold3d as m3
import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sculptsvc.errors import UnrepairableMesh
from sculptsvc.mesh import MeshParams
from sculptsvc.mesh.remesh import voxel_remesh
from sculptsvc.mesh.repair import (
    clean_faces,
    edge_counts,
    is_closed_manifold,
    repair,
    to_manifold,
    weld,
)

PARAMS = MeshParams()


def sphere(radius: float = 10.0, center: tuple[float, float, float] = (0, 0, 0), sub: int = 3):
    mesh = trimesh.creation.icosphere(subdivisions=sub, radius=radius)
    mesh.apply_translation(center)
    return mesh


def soup(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Every triangle with its own three vertices, as STL files store them."""
    return trimesh.Trimesh(
        mesh.triangles.reshape(-1, 3), np.arange(len(mesh.faces) * 3).reshape(-1, 3), process=False
    )


def test_clean_sphere_passes_unchanged() -> None:
    mesh = sphere()
    out, log = repair(mesh, PARAMS)
    assert log.method == "none" and log.actions == []
    assert len(out.faces) == len(mesh.faces)
    assert is_closed_manifold(out.faces)
    assert out.volume == pytest.approx(mesh.volume, rel=1e-9)


def test_triangle_soup_is_welded_into_a_solid() -> None:
    mesh = sphere()
    out, log = repair(soup(mesh), PARAMS)
    assert log.welded_vertices == len(mesh.faces) * 3 - len(mesh.vertices)
    assert len(out.vertices) == len(mesh.vertices)
    assert is_closed_manifold(out.faces)


def test_inside_out_mesh_is_turned_outward() -> None:
    mesh = sphere()
    mesh.invert()
    assert mesh.volume < 0
    out, log = repair(mesh, PARAMS)
    assert out.volume == pytest.approx(-mesh.volume, rel=1e-9)
    assert any("outward" in a for a in log.actions)


def test_holes_and_flipped_faces_are_repaired() -> None:
    mesh = sphere()
    faces = mesh.faces.copy()
    faces[::7] = faces[::7, ::-1]  # flip every 7th face
    faces = np.delete(faces, [3, 200, 555], axis=0)  # three holes
    broken = trimesh.Trimesh(mesh.vertices, faces, process=False)
    boundary, _, _ = edge_counts(broken.faces)
    assert boundary > 0
    out, log = repair(broken, PARAMS)
    assert is_closed_manifold(out.faces)
    assert log.holes_filled == 3
    assert out.volume == pytest.approx(mesh.volume, rel=0.01)


def test_duplicate_faces_and_membranes_are_removed() -> None:
    mesh = sphere()
    twice = np.vstack([mesh.faces, mesh.faces[:10]])  # repeated faces
    out, _ = repair(trimesh.Trimesh(mesh.vertices, twice, process=False), PARAMS)
    assert len(out.faces) == len(mesh.faces)

    faces, stats = clean_faces(np.array([[0, 1, 2], [2, 1, 0], [0, 2, 3]]), np.eye(4, 3) + 0.1)
    assert stats["membrane"] == 2 and faces.tolist() == [[0, 2, 3]]


def test_debris_is_dropped_and_overlapping_shells_united() -> None:
    body = sphere(10.0)
    overlapping = sphere(6.0, center=(12.0, 0, 0))
    debris = sphere(0.3, center=(40.0, 0, 0), sub=1)
    mesh = trimesh.util.concatenate([body, overlapping, debris])
    out, log = repair(mesh, PARAMS)
    assert is_closed_manifold(out.faces)
    assert log.debris_shells == 1
    assert any("united 2 shells" in a for a in log.actions)
    assert len(out.split(only_watertight=False)) == 1
    # The union is larger than the body and smaller than the sum of the two spheres.
    assert body.volume < out.volume < body.volume + overlapping.volume
    assert out.bounds[1][0] < 20.0  # debris at x = 40 is gone


def test_two_comparable_disjoint_solids_are_rejected_with_a_reason() -> None:
    mesh = trimesh.util.concatenate([sphere(10.0), sphere(8.0, center=(40.0, 0, 0))])
    with pytest.raises(UnrepairableMesh, match="2 disjoint solids") as refused:
        repair(mesh, PARAMS)
    assert "not all within 0.5 mm of each other" in refused.value.message
    out, _ = repair(mesh, MeshParams(max_parts=2))
    assert len(out.split(only_watertight=False)) == 2


def test_solids_that_nearly_touch_are_fused_into_one_piece() -> None:
    """A chain of three balls, each 0.1 units (0.17 mm at the 80 mm cast) from the
    next and the outer two far apart, is one piece through the voxel rebuild: the gap that
    joins them all is the widest edge of their spanning tree, not the widest pair."""
    a, b, c = sphere(10.0), sphere(8.0, center=(18.1, 0, 0)), sphere(6.0, center=(32.2, 0, 0))
    out, log = repair(trimesh.util.concatenate([a, b, c]), PARAMS)
    assert log.method == "remesh" and is_closed_manifold(out.faces)
    assert len(out.split(only_watertight=False)) == 1
    fused = next(action for action in log.actions if "to fuse 3 solids" in action)
    widest = float(fused.split("at most ")[1].split(" mm")[0])
    # 0.1 units x 80 / 48.2 (the longest side), a little more between the balls' facets
    assert 0.166 <= widest <= 0.3
    assert out.volume == pytest.approx(a.volume + b.volume + c.volume, rel=0.05)
    # the same balls 1 unit apart (1.6 mm at the cast size): separate pieces, refused
    far = [a, sphere(8.0, center=(19.0, 0, 0)), sphere(6.0, center=(34.0, 0, 0))]
    with pytest.raises(UnrepairableMesh, match="3 disjoint solids"):
        repair(trimesh.util.concatenate(far), PARAMS)
    with pytest.raises(UnrepairableMesh, match="3 disjoint solids"):
        repair(trimesh.util.concatenate([a, b, c]), MeshParams(fuse_gap_mm=0.0))
    with pytest.raises(UnrepairableMesh, match="3 disjoint solids"):
        repair(trimesh.util.concatenate([a, b, c]), MeshParams(remesh_fallback=False))


@pytest.mark.parametrize(
    ("vertices", "faces", "reason"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), "no triangles"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), np.array([[0, 1, 2]]), "flat"),
        (np.array([[0, 0, 0], [1, 0, np.nan], [0, 1, 0]]), np.array([[0, 1, 2]]), "non-finite"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1.0]]), np.array([[0, 1, 7]]), "do not exist"),
    ],
)
def test_hopeless_inputs_raise_unrepairable(
    vertices: np.ndarray, faces: np.ndarray, reason: str
) -> None:
    mesh = trimesh.Trimesh(vertices, faces, process=False, validate=False)
    with pytest.raises(UnrepairableMesh, match=reason) as info:
        repair(mesh, PARAMS)
    assert info.value.code == "mesh_unrepairable"


def test_open_sheet_encloses_no_volume_and_is_rejected() -> None:
    grid = trimesh.creation.box(extents=(10, 10, 0.01))
    top = grid.faces[grid.face_normals[:, 2] > 0.9]  # just the top face: an open sheet
    sheet = trimesh.Trimesh(grid.vertices, top, process=False)
    with pytest.raises(UnrepairableMesh):
        repair(sheet, PARAMS)


def test_a_tilted_single_triangle_is_an_open_sheet_not_a_processing_failure() -> None:
    """Not flat in its bounding box (a test model of assimp's is one such triangle): the
    voxel rebuild finds nothing enclosed, and that is the input's fault (exit 2)."""
    tri = trimesh.Trimesh(np.array([[0, 0, 0], [2, 0, 0.3], [0, 2, 2.0]]), np.array([[0, 1, 2]]))
    with pytest.raises(UnrepairableMesh, match="encloses no volume") as info:
        repair(tri, PARAMS)
    assert info.value.code == "mesh_unrepairable"


def test_a_shell_meshlab_refuses_goes_to_the_voxel_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MeshLab's hole filling raises on a shell that is still not 2-manifold (seen on an
    engine assembly of 1,419 shells); that shell is closed by the rebuild, not a crash."""
    import pymeshlab

    import sculptsvc.mesh.repair as repair_module

    def refuse(shell: trimesh.Trimesh, params: MeshParams, census: object = None) -> None:
        raise pymeshlab.PyMeshLabException("Mesh has some not 2-manifold edges")

    mesh = sphere(10.0, sub=4)
    holed = trimesh.Trimesh(mesh.vertices, mesh.faces[1:], process=False)
    monkeypatch.setattr(repair_module, "_close_shell", refuse)
    out, log = repair(holed, MeshParams(remesh_resolution=32))  # the rebuild seals 1 face
    assert log.method == "remesh"
    assert is_closed_manifold(out.faces)
    assert out.volume == pytest.approx(mesh.volume, rel=0.1)  # a coarse field: 7 % less


def test_too_many_faces_rejected_before_work() -> None:
    with pytest.raises(UnrepairableMesh, match="limit"):
        repair(sphere(), MeshParams(max_input_faces=100))


def test_voxel_fallback_seals_cracks_when_hole_filling_is_not_allowed() -> None:
    mesh = sphere(10.0, sub=4)
    cracked = trimesh.Trimesh(mesh.vertices, np.delete(mesh.faces, [10, 900, 2000], axis=0))
    # Forbid hole filling so the fallback must act; 4 voxels of closing seal ~1 mm cracks.
    params = MeshParams(max_hole_edges=3, remesh_closing_voxels=4)
    out, log = repair(cracked, params)
    assert log.method == "remesh"
    assert is_closed_manifold(out.faces)
    assert out.volume == pytest.approx(mesh.volume, rel=0.03)
    with pytest.raises(UnrepairableMesh, match="fallback is off"):
        repair(cracked, params.model_copy(update={"remesh_fallback": False}))


def test_voxel_fallback_rejects_a_gaping_hole_with_a_reason() -> None:
    mesh = sphere(10.0, sub=4)
    bowl = trimesh.Trimesh(mesh.vertices, mesh.faces[mesh.triangles_center[:, 2] < 8.0])
    with pytest.raises(UnrepairableMesh):
        repair(bowl, MeshParams(max_hole_edges=3))  # no filling, closing cannot span it


def test_voxel_remesh_of_axis_aligned_walls_is_manifold() -> None:
    """Two parallel plates (walls of a building model): their distance field is exactly the
    iso level on whole sheets of voxels; marching cubes made non-manifold edges there."""
    plate = trimesh.creation.box(extents=(20, 1, 10))
    other = plate.copy()
    other.apply_translation((0, 3, 0))
    walls = trimesh.util.concatenate([plate, other])
    out = voxel_remesh(walls, resolution=40, closing=2)
    assert edge_counts(weld(out.vertices, out.faces, 0.0)[1]) == (0, 0, 0)
    assert to_manifold(out).status() == m3.Error.NoError


def test_voxel_remesh_of_a_closed_box_keeps_its_volume() -> None:
    box = trimesh.creation.box(extents=(20, 10, 5))
    out = voxel_remesh(box, resolution=80, closing=1)
    assert is_closed_manifold(weld(out.vertices, out.faces, 0.0)[1])
    assert out.volume == pytest.approx(box.volume, rel=0.08)


@st.composite
def damaged_meshes(draw: st.DrawFn) -> tuple[trimesh.Trimesh, float]:
    """A closed shape with random holes, flipped faces and optional debris."""
    kind = draw(st.sampled_from(["sphere", "box", "capsule"]))
    if kind == "sphere":
        base = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    elif kind == "box":
        base = trimesh.creation.box(extents=(8.0, 5.0, 3.0))
        base = trimesh.Trimesh(*trimesh.remesh.subdivide(base.vertices, base.faces))
        base = trimesh.Trimesh(*trimesh.remesh.subdivide(base.vertices, base.faces))
    else:
        base = trimesh.creation.capsule(height=6.0, radius=2.0, count=[16, 16])
    n = len(base.faces)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    faces = base.faces.copy()
    flips = rng.random(n) < draw(st.floats(0.0, 0.3))
    faces[flips] = faces[flips, ::-1]
    holes = rng.choice(n, size=draw(st.integers(0, 4)), replace=False)
    faces = np.delete(faces, holes, axis=0)
    parts = [trimesh.Trimesh(base.vertices, faces, process=False)]
    if draw(st.booleans()):
        debris = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
        debris.apply_translation(base.bounds[1] + 2.0)
        parts.append(debris)
    return trimesh.util.concatenate(parts), float(base.volume)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_meshes())
def test_property_damaged_shapes_come_back_closed_outward_and_same_size(
    case: tuple[trimesh.Trimesh, float],
) -> None:
    mesh, volume = case
    out, _ = repair(mesh, PARAMS)
    assert is_closed_manifold(out.faces)
    assert len(out.split(only_watertight=False)) == 1
    assert out.volume == pytest.approx(volume, rel=0.05)


def test_large_inputs_are_coarsened_by_clustering_first_and_stay_a_closed_solid() -> None:
    mesh = sphere(sub=5)  # 20,480 triangles stand in for a million
    params = MeshParams(coarsen_above_faces=10_000, coarsen_to_faces=2_000)
    out, log = repair(mesh, params)
    assert is_closed_manifold(out.faces)
    assert 1_000 < len(out.faces) < 6_000
    assert out.volume == pytest.approx(mesh.volume, rel=0.02)
    assert any(a.startswith("coarsened 20480 triangles") for a in log.actions)
    below, _ = repair(mesh, MeshParams(coarsen_above_faces=len(mesh.faces)))
    assert len(below.faces) == len(mesh.faces)  # at or under the threshold: untouched


def with_non_finite_debris() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(closed sphere, the same plus a face to a NaN vertex and an unused infinite vertex),
    as a scanner writes missing depth."""
    ball = sphere(sub=2)
    vertices = np.vstack([ball.vertices, [[np.nan, np.nan, np.nan], [np.inf, 0.0, 0.0]]])
    faces = np.vstack([ball.faces, [[0, 1, len(ball.vertices)]]])
    return ball, trimesh.Trimesh(vertices, faces, process=False, validate=False)


def test_faces_with_non_finite_corners_are_dropped_and_said() -> None:
    ball, dirty = with_non_finite_debris()
    out, log = repair(dirty, PARAMS)
    assert "removed 1 faces with non-finite vertex coordinates" in log.actions
    assert is_closed_manifold(out.faces) and np.isfinite(out.vertices).all()
    assert out.volume == pytest.approx(ball.volume, rel=1e-9)


def test_the_mesh_stage_and_the_mold_loader_take_the_same_non_finite_input(tmp_path: Path) -> None:
    """MeshLab aborts the process on a NaN vertex: the report's Hausdorff distance must
    compare against the source as repaired; the mold's loader drops the same faces and says
    so (it used to drop them silently)."""
    from sculptsvc.commands.mold import load_part
    from sculptsvc.mesh import process_mesh

    ball, dirty = with_non_finite_debris()
    report = process_mesh(dirty, MeshParams(target_faces=2000)).report
    assert report.watertight and np.isfinite(report.hausdorff_rel)
    assert "removed 1 faces with non-finite vertex coordinates" in report.repair_actions
    path = tmp_path / "dirty.ply"
    path.write_bytes(dirty.export(file_type="ply"))
    part = load_part(path)
    assert len(part.faces) == len(ball.faces)
    assert part.notes == ["removed 1 faces with non-finite vertex coordinates"]


def test_edge_counts_match_counting_each_edge_by_hand() -> None:
    """The one-sort count against a dictionary of edges, on meshes with holes, repeated
    faces (a directed edge used twice), flipped faces and edges shared by three faces."""
    from collections import Counter

    rng = np.random.default_rng(11)
    sphere = trimesh.creation.icosphere(subdivisions=2).faces
    cases = [
        sphere,
        sphere[5:],  # holes
        np.vstack([sphere, sphere[:7]]),  # repeats: non-manifold, directed twice
        np.vstack([sphere[:30], sphere[30:][:, ::-1]]),  # half flipped
        rng.integers(0, 60, size=(400, 3)),  # anything at all
    ]
    for faces in cases:
        directed = Counter((int(f[i]), int(f[(i + 1) % 3])) for f in faces for i in range(3))
        undirected = Counter()
        for (a, b), uses in directed.items():
            undirected[(min(a, b), max(a, b))] += uses
        expected = (
            sum(c == 1 for c in undirected.values()),
            sum(c > 2 for c in undirected.values()),
            sum(c - 1 for c in directed.values()),
        )
        assert edge_counts(faces) == expected


def test_edge_census_reads_counts_holes_and_adjacency_off_one_sort() -> None:
    """The census repair takes once gives what each question asked alone gives: the edge
    counts, the holes counted by hand (loops of single-use edges, walked as a graph), and
    trimesh's own face adjacency as a set of pairs (non-manifold edges join no faces)."""
    import networkx as nx

    from sculptsvc.mesh.repair import edge_census

    rng = np.random.default_rng(5)
    sphere_faces = trimesh.creation.icosphere(subdivisions=2).faces
    two = np.vstack([sphere_faces, sphere_faces + sphere_faces.max() + 1])
    cases = [
        sphere_faces,
        sphere_faces[[i for i in range(len(sphere_faces)) if i % 37]],  # separate holes
        two[[i for i in range(len(two)) if i not in (3, 4, 200)]],  # holes on two shells
        np.vstack([sphere_faces, sphere_faces[:7]]),  # non-manifold edges
        rng.integers(0, 60, size=(400, 3)),
    ]
    for faces in cases:
        census = edge_census(faces)
        assert census.counts == edge_counts(faces)
        assert census.closed == is_closed_manifold(faces)
        single = trimesh.grouping.group_rows(
            np.sort(trimesh.geometry.faces_to_edges(faces), axis=1), require_count=1
        )
        graph = nx.Graph(
            [tuple(e) for e in np.sort(trimesh.geometry.faces_to_edges(faces), axis=1)[single]]
        )
        assert census.boundary_loops() == nx.number_connected_components(graph)
        mesh = trimesh.Trimesh(np.zeros((int(faces.max()) + 1, 3)), faces, process=False)
        theirs = {tuple(sorted(p)) for p in mesh.face_adjacency.tolist()}
        ours = {tuple(sorted(p)) for p in census.face_adjacency().tolist()}
        assert ours == theirs and len(census.face_adjacency()) == len(mesh.face_adjacency)
    assert edge_census(sphere_faces[5:]).boundary_loops() == 1
    assert edge_census(np.zeros((0, 3), dtype=np.int64)).closed is False


def test_split_shells_gives_each_shell_its_own_vertices_largest_first() -> None:
    """Shells come out as trimesh's submesh + remove_unreferenced_vertices made them (the
    same vertex and face arrays), largest first and ties by first face, for a soup of
    shells of different sizes whose faces are interleaved."""
    from sculptsvc.mesh.repair import split_shells

    rng = np.random.default_rng(11)
    parts = [
        trimesh.creation.icosphere(subdivisions=s, radius=1.0).apply_translation((3.0 * i, 0, 0))
        for i, s in enumerate([0, 1, 0, 2, 1, 0])
    ]
    soup = trimesh.util.concatenate(parts)
    shuffled = trimesh.Trimesh(
        soup.vertices, soup.faces[rng.permutation(len(soup.faces))], process=False
    )
    shells = split_shells(shuffled)
    labels = trimesh.graph.connected_component_labels(
        shuffled.face_adjacency, node_count=len(shuffled.faces)
    )
    expected = []
    for label in np.unique(labels):
        part = trimesh.Trimesh(shuffled.vertices, shuffled.faces[labels == label], process=False)
        part.remove_unreferenced_vertices()
        expected.append((-len(part.faces), int(np.flatnonzero(labels == label)[0]), part))
    expected.sort(key=lambda e: e[:2])
    assert [len(s.faces) for s in shells] == [320, 80, 80, 20, 20, 20]
    for shell, (_, _, want) in zip(shells, expected, strict=True):
        np.testing.assert_array_equal(shell.faces, want.faces)
        np.testing.assert_array_equal(shell.vertices, want.vertices)
