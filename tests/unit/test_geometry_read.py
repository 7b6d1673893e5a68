"""The trimesh-free geometry reader and weld `sculpt mold` uses: equal to trimesh's, to the bit.

`sculpt mold` skips trimesh's import for binary STLs and simple GLBs. That is only sound if
it hands ``make_mold`` exactly the arrays trimesh would have: same positions, same faces in
the same order, after the same node transform and the same weld. Each test compares against
trimesh itself; the last one checks that the command really leaves trimesh and scipy out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from mold import shapes
from mold.export import stl_bytes
from mold.features import _highest_within
from mold.geometry import component_count
from sculptsvc.mesh.geometry_read import merge_close_vertices, read_geometry
from sculptsvc.mesh.gltf import pack_glb
from sculptsvc.mesh.io import load_mesh


def _torus() -> tuple[np.ndarray, np.ndarray]:
    v, f = shapes.torus(segments=24)
    return v.astype(np.float32), f


def _glb(
    path: Path,
    node: dict[str, Any],
    *,
    index_type: int | None = 5125,
    interleave: bool = False,
    primitives: int = 1,
) -> Path:
    """A GLB of the torus under ``node`` (its transform keys), built by hand, so the test
    controls each feature trimesh's reader handles: index widths, strides, transforms."""
    v, f = _torus()
    if index_type is None:  # no indices: every three positions are a triangle
        v, f = v[f].reshape(-1, 3), None
    blob = bytearray()
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []
    if interleave:  # position and a dummy normal in one strided view
        rows = np.zeros((len(v), 6), dtype="<f4")
        rows[:, :3] = v
        views.append({"buffer": 0, "byteOffset": 0, "byteLength": rows.nbytes, "byteStride": 24})
        blob += rows.tobytes()
    else:
        views.append({"buffer": 0, "byteOffset": 0, "byteLength": v.nbytes})
        blob += v.astype("<f4").tobytes()
    accessors.append(
        {"bufferView": 0, "componentType": 5126, "count": len(v), "type": "VEC3"}
        | {"min": v.min(axis=0).tolist(), "max": v.max(axis=0).tolist()}
    )
    primitive: dict[str, Any] = {"attributes": {"POSITION": 0}, "mode": 4}
    if f is not None and index_type is not None:
        dtype = {5121: "<u1", 5123: "<u2", 5125: "<u4"}[index_type]
        data = f.astype(dtype).tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        blob += data + b"\0" * (-len(data) % 4)
        accessors.append(
            {"bufferView": 1, "componentType": index_type, "count": f.size, "type": "SCALAR"}
        )
        primitive["indices"] = 1
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, **node}],
        "meshes": [{"primitives": [primitive] * primitives}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    path.write_bytes(pack_glb(doc, bytes(blob)))
    return path


def _as_trimesh_reads(path: Path) -> tuple[np.ndarray, np.ndarray]:
    mesh = load_mesh(path, colours=False)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


@pytest.mark.parametrize(
    ("node", "index_type", "interleave"),
    [
        ({"scale": [0.001, 0.001, 0.001]}, 5123, False),  # what the mesh stage writes
        ({}, 5125, False),
        ({"translation": [12.5, -3.0, 40.0], "scale": [2.0, 0.5, 1.5]}, 5125, True),
        ({"matrix": [0, 1, 0, 0, -1, 0, 0, 0, 0, 0, 1, 0, 5, 6, 7, 1]}, 5125, False),
        ({"scale": [-1.0, 1.0, 1.0]}, 5125, False),  # a mirror: trimesh flips the winding
        ({"translation": [1e-9, 0.0, 0.0]}, None, False),  # near-identity, no indices
    ],
)
def test_a_simple_glb_reads_as_trimesh_reads_it(
    tmp_path: Path, node: dict[str, Any], index_type: int | None, interleave: bool
) -> None:
    path = _glb(tmp_path / "part.glb", node, index_type=index_type, interleave=interleave)
    read = read_geometry(path)
    assert read is not None
    expected = _as_trimesh_reads(path)
    assert read[0].dtype == np.float64 and read[1].dtype == np.int64
    assert np.array_equal(read[0], expected[0]) and np.array_equal(read[1], expected[1])
    if node.get("scale", [1])[0] == -1.0:  # the reader did flip: faces differ from the file's
        assert np.array_equal(read[1], np.fliplr(_torus()[1]))


def test_a_uint8_indexed_glb_reads_as_trimesh_reads_it(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.uint8)
    blob = v.tobytes() + f.tobytes()
    doc = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 1, "componentType": 5121, "count": 12, "type": "SCALAR"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 48},
            {"buffer": 0, "byteOffset": 48, "byteLength": 12},
        ],
        "buffers": [{"byteLength": 60}],
    }
    path = tmp_path / "tet.glb"
    path.write_bytes(pack_glb(doc, blob))
    read = read_geometry(path)
    assert read is not None
    expected = _as_trimesh_reads(path)
    assert np.array_equal(read[0], expected[0]) and np.array_equal(read[1], expected[1])


@pytest.mark.parametrize(
    "node",
    [{"rotation": [0.0, 0.0, 0.7071068, 0.7071068]}, {"children": []}, {"camera": 0}],
)
def test_other_glbs_are_left_to_trimesh(tmp_path: Path, node: dict[str, Any]) -> None:
    assert read_geometry(_glb(tmp_path / "part.glb", node)) is None


def test_a_glb_of_two_primitives_is_left_to_trimesh(tmp_path: Path) -> None:
    assert read_geometry(_glb(tmp_path / "two.glb", {}, primitives=2)) is None


def test_binary_stl_reads_as_trimesh_reads_it_and_ascii_is_left_to_it(tmp_path: Path) -> None:
    v, f = _torus()
    binary = tmp_path / "torus.stl"
    binary.write_bytes(stl_bytes(v, f, "part"))
    read = read_geometry(binary)
    assert read is not None
    expected = _as_trimesh_reads(binary)
    assert np.array_equal(read[0], expected[0]) and np.array_equal(read[1], expected[1])
    ascii_stl = tmp_path / "ascii.stl"
    ascii_stl.write_bytes(trimesh.Trimesh(v, f).export(file_type="stl_ascii").encode())
    assert read_geometry(ascii_stl) is None
    assert read_geometry(tmp_path / "part.obj") is None  # not a fast-path format


@pytest.mark.parametrize("hash_collides", [False, True])
def test_the_weld_is_trimeshs_processing_weld(
    monkeypatch: pytest.MonkeyPatch, hash_collides: bool
) -> None:
    """Also when every row hashes alike (a multiplier of 0): the collision is detected and
    the rows are grouped exactly, never merged."""
    if hash_collides:
        import sculptsvc.mesh.geometry_read as geometry_read

        monkeypatch.setattr(geometry_read, "_ROW_HASH", np.zeros(3, dtype=np.uint64))
    rng = np.random.default_rng(7)
    v, f = shapes.torus(segments=20)
    split = v[f].reshape(-1, 3)  # every corner its own vertex, as STL and seams give
    split[::5] += rng.uniform(-4e-9, 4e-9, size=split[::5].shape)  # under 1e-8: still one
    split[1::7] += 3e-7  # well over: stays apart
    unused = rng.normal(size=(5, 3))  # vertices no face uses are dropped
    vertices = np.concatenate([unused, split])
    faces = (np.arange(len(split)) + len(unused)).reshape(-1, 3)
    order = rng.permutation(len(vertices))  # first appearance decides the order
    where = np.argsort(order)
    vertices, faces = vertices[order], where[faces]
    welded = trimesh.Trimesh(vertices, faces, process=True)
    got_v, got_f = merge_close_vertices(vertices, faces)
    assert len(got_v) < len(split) - len(split) // 2  # it did weld
    assert np.array_equal(got_v, welded.vertices) and np.array_equal(got_f, welded.faces)


def test_the_weld_of_a_tiny_part_is_the_weld_of_the_same_part_at_full_size() -> None:
    """trimesh's weld is 1e-8 absolute: on a part a few micrometres long (a GLB of a mesh
    drawn in metres, read as millimetres) it welded distinct vertices together. A part
    under 1e-3 across is welded 1e-5 of its extent or finer: the same vertices as the part
    scaled up, where the weld is trimesh's own."""
    v, f = shapes.torus(segments=40)
    split = v[f].reshape(-1, 3)  # every corner its own vertex, as STL and seams give
    faces = np.arange(len(split)).reshape(-1, 3)
    full_v, full_f = merge_close_vertices(split, faces)
    assert len(full_v) == len(v)
    for scale in (1e-4, 1e-7):
        tiny_v, tiny_f = merge_close_vertices(split * scale, faces)
        assert np.array_equal(tiny_f, full_f) and np.allclose(tiny_v, full_v * scale, rtol=0)
    # trimesh's weld (8 decimals) joins distinct vertices of the part 2e-7 across
    merged_v, _ = merge_close_vertices(split * 1e-7, faces, digits=8)
    assert len(merged_v) < len(v)


def test_component_count_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for n, k in [(1, 0), (10, 4), (500, 400), (5000, 4500), (20000, 40000)]:
        edges = rng.integers(0, n, (k, 2))
        graph = coo_matrix((np.ones(k), (edges[:, 0], edges[:, 1])), shape=(n, n))
        assert component_count(n, edges) == connected_components(graph, directed=False)[0]
    perm = rng.permutation(10_000)  # a long path with shuffled labels: one component
    assert component_count(10_000, np.stack([perm[:-1], perm[1:]], axis=1)) == 1


def test_the_vent_peak_test_matches_a_kd_tree() -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        v = rng.normal(size=(3000, 3)) * rng.uniform(1, 40)
        candidates = rng.choice(len(v), 150, replace=False)
        radius = float(rng.uniform(0.5, 12.0))
        balls = cKDTree(v).query_ball_point(v[candidates], radius)
        expected = [v[i, 2] >= v[ball, 2].max() for i, ball in zip(candidates, balls, strict=True)]
        assert _highest_within(v, candidates, radius).tolist() == expected


MOLD_IMPORTS = """
import json, sys
from pathlib import Path
from mold import MoldSpec
from sculptsvc.commands.mold import load_part, run_mold
spec = MoldSpec()
run_mold(load_part(Path(sys.argv[1]), spec=spec), spec, Path(sys.argv[2]))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_molding_a_glb_imports_neither_trimesh_nor_scipy(tmp_path: Path) -> None:
    """The point of the reader: the mold command's 0.3 s of trimesh and scipy imports."""
    path = _glb(tmp_path / "part.glb", {"scale": [0.001, 0.001, 0.001]})  # mold scales it
    proc = subprocess.run(
        [sys.executable, "-c", MOLD_IMPORTS, str(path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout))
    assert {"mold", "pymeshlab", "manifold3d"} <= loaded
    assert not loaded & {"trimesh", "scipy", "networkx"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["mold_a.stl", "mold_b.stl", "mold.3mf", "mold.json"]
    )
