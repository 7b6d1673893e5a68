"""Loading: every format trimesh or pymeshlab reads, colours kept, typed format errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mold.export import MeshObject, three_mf_bytes
from sculptsvc.errors import UnreadableMesh
from sculptsvc.mesh import MeshParams, load_mesh
from sculptsvc.mesh.repair import is_closed_manifold, repair

# a unit cube as triangle strips: the four sides in one strip (orientation alternates),
# the two caps in strips of their own, restarts marked by -1 as scanners write them
CUBE = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    dtype=np.float64,
)
CUBE_STRIPS = [0, 4, 1, 5, 2, 6, 3, 7, 0, 4, -1, 0, 3, 1, 2, -1, 4, 5, 7, 6]
RED = (200, 10, 10)


def write_strip_ply(path: Path, *, binary: bool) -> Path:
    """A PLY whose surface is a ``tristrips`` element (no ``face`` element), red vertices."""
    header = [
        "ply",
        "format binary_little_endian 1.0" if binary else "format ascii 1.0",
        f"element vertex {len(CUBE)}",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        "element tristrips 1",
        "property list int int vertex_indices",
        "end_header",
    ]
    with path.open("wb") as fh:
        fh.write(("\n".join(header) + "\n").encode())
        if binary:
            for p in CUBE:
                fh.write(struct.pack("<fffBBB", *p, *RED))
            fh.write(struct.pack(f"<i{len(CUBE_STRIPS)}i", len(CUBE_STRIPS), *CUBE_STRIPS))
        else:
            for p in CUBE:
                fh.write(f"{p[0]:g} {p[1]:g} {p[2]:g} {RED[0]} {RED[1]} {RED[2]}\n".encode())
            fh.write(f"{len(CUBE_STRIPS)} {' '.join(map(str, CUBE_STRIPS))}\n".encode())
    return path


@pytest.mark.parametrize("binary", [False, True])
def test_triangle_strip_ply_loads_with_colours_and_repairs_to_the_cube(
    tmp_path: Path, binary: bool
) -> None:
    mesh = load_mesh(write_strip_ply(tmp_path / "strips.ply", binary=binary))
    assert len(mesh.faces) == 12
    assert np.all(mesh.visual.vertex_colors[:, :3] == RED)
    solid, _ = repair(mesh, MeshParams())
    assert is_closed_manifold(solid.faces)
    assert solid.volume == pytest.approx(1.0, rel=1e-9)


def coloured_sphere() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    colours = np.tile(np.array([[10, 200, 30, 255]], dtype=np.uint8), (len(sphere.vertices), 1))
    sphere.visual = trimesh.visual.ColorVisuals(sphere, vertex_colors=colours)
    return sphere


@pytest.mark.parametrize(
    ("name", "file_type", "colours"),
    [
        ("s.obj", "obj", False),
        ("s.stl", "stl", False),
        ("s.stl", "stl_ascii", False),
        ("s.ply", "ply", True),
        ("s.off", "off", False),
        ("s.glb", "glb", True),
        ("s.gltf", "gltf", True),
    ],
)
def test_every_format_loads_a_closed_sphere(
    tmp_path: Path, name: str, file_type: str, colours: bool
) -> None:
    sphere = coloured_sphere()
    path = tmp_path / name
    data = sphere.export(file_type=file_type)
    if isinstance(data, dict):  # glTF: the .gltf plus its buffers
        for key, value in data.items():
            (tmp_path / key).write_bytes(value)
        (tmp_path / "model.gltf").rename(path)
    else:
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    mesh = load_mesh(path)
    solid, _ = repair(mesh, MeshParams())
    assert len(solid.faces) == len(sphere.faces)
    assert solid.volume == pytest.approx(sphere.volume, rel=1e-5)
    if colours:
        assert np.all(mesh.visual.vertex_colors[:, :3] == (10, 200, 30))


def test_3mf_build_items_load_with_their_transforms(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    data = three_mf_bytes([MeshObject("s", sphere.vertices, sphere.faces, (5.0, 0.0, 0.0))], 6)
    path = tmp_path / "s.3mf"
    path.write_bytes(data)
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(sphere.faces)
    assert mesh.vertices.mean(axis=0)[0] == pytest.approx(5.0, abs=1e-4)
    solid, _ = repair(mesh, MeshParams())
    assert solid.volume == pytest.approx(sphere.volume, rel=1e-5)


def test_point_cloud_is_refused_as_such(tmp_path: Path) -> None:
    path = tmp_path / "cloud.ply"
    points = np.random.default_rng(0).normal(size=(50, 3))
    path.write_bytes(trimesh.PointCloud(points).export(file_type="ply"))
    with pytest.raises(UnreadableMesh, match="point cloud") as info:
        load_mesh(path)
    assert info.value.code == "mesh_unreadable" and info.value.detail["points"] == 50


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n", "as PLY"),
        ("bad.3mf", b"not a zip", "as 3MF"),
        ("bad.glb", b"glTF\x02\x00\x00\x00garbage", "as glTF binary"),
        ("mesh.dae", b"<collada/>", "unsupported mesh format"),
    ],
)
def test_unreadable_files_get_a_typed_error_naming_the_format(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    cwd = Path.cwd()
    with pytest.raises(UnreadableMesh, match=match) as info:
        load_mesh(path)
    assert info.value.code == "mesh_unreadable"
    assert Path.cwd() == cwd  # MeshLab's reader must not move the process elsewhere


def test_textures_come_along_from_glb_and_obj(tmp_path: Path) -> None:
    from PIL import Image

    box = trimesh.creation.box(extents=(10.0, 10.0, 10.0))
    uv = np.random.default_rng(0).uniform(0, 1, (len(box.vertices), 2))
    texture = Image.fromarray(np.full((8, 8, 3), (30, 60, 220), np.uint8))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    for name, file_type in (("t.glb", "glb"), ("t.obj", "obj")):
        path = tmp_path / name
        if file_type == "obj":
            box.export(path)  # writes the .mtl and the texture beside it
        else:
            path.write_bytes(box.export(file_type=file_type))
        mesh = load_mesh(path)
        assert mesh.visual.kind == "texture"
        assert mesh.visual.uv is not None and len(mesh.visual.uv) == len(mesh.vertices)
        assert np.asarray(mesh.visual.material.to_color(mesh.visual.uv[:1]))[0, 2] > 150
