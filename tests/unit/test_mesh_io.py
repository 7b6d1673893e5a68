"""Loading: every format trimesh or pymeshlab reads, colours kept, typed format errors."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mold.export import MeshObject, three_mf_bytes
from sculptsvc.errors import UnreadableMesh
from sculptsvc.mesh import MeshParams, load_mesh
from sculptsvc.mesh.gltf import pack_glb, unpack_glb
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


def test_an_obj_face_with_a_missing_vertex_is_refused_the_same_way_every_time(
    tmp_path: Path,
) -> None:
    """Index 12 of 8 vertices (assimp's malformed.obj test model): trimesh stops at it;
    MeshLab's reader would read past its array and give a different mesh on every run."""
    corners = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
    text = "".join(f"v {x} {y} {z}\n" for x, y, z in corners)
    text += "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 12\nf 1 3 7 5\nf 2 6 8 4\n"
    path = tmp_path / "malformed.obj"
    path.write_text(text)
    for _ in range(3):
        with pytest.raises(UnreadableMesh, match="refers to a vertex the file does not have"):
            load_mesh(path)


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
        # the mold reads geometry only: the same positions and triangles, no texture read
        bare = load_mesh(path, colours=False)
        assert np.array_equal(bare.vertices, mesh.vertices)
        assert np.array_equal(bare.faces, mesh.faces)
        if file_type == "glb":
            assert getattr(bare.visual, "kind", None) != "texture"


# --- colours per face and per face corner -------------------------------------------------

BLUE = (20, 40, 230)


def two_tone_box() -> tuple[trimesh.Trimesh, np.ndarray]:
    """A 10 mm box whose faces above its middle are red, the rest blue: (mesh, face rgb)."""
    box = trimesh.creation.box(extents=(10.0, 10.0, 10.0)).subdivide().subdivide()
    top = box.triangles_center[:, 2] > 0
    return box, np.where(top[:, None], RED, BLUE).astype(np.uint8)


def assert_two_tone(mesh: trimesh.Trimesh, expected_kind: str) -> None:
    """The loaded colours reach the colour source: face centres read their own colour."""
    from sculptsvc.mesh.colors import color_source_from_visual

    source, kind = color_source_from_visual(mesh)
    assert kind == expected_kind and source is not None
    centres = mesh.triangles_center
    got = source(centres, mesh.face_normals)[:, :3].astype(int)
    top = centres[:, 2] > 0
    assert np.abs(got[top] - RED).max() <= 2 and np.abs(got[~top] - BLUE).max() <= 2


def write_off(path: Path, mesh: trimesh.Trimesh, face_rgb: np.ndarray, *, per: str) -> Path:
    """OFF with colours as tools write them: ``COFF`` with RGBA after each vertex, or RGB
    after each face's indices (trimesh's reader keeps neither)."""
    v, f = mesh.vertices, mesh.faces
    vertex_rgb = np.zeros((len(v), 3), np.uint8)
    vertex_rgb[f.ravel()] = np.repeat(face_rgb, 3, axis=0)  # every vertex of a face
    lines = [("COFF" if per == "vertex" else "OFF"), f"{len(v)} {len(f)} 0"]
    for p, c in zip(v, vertex_rgb, strict=True):
        lines.append(
            " ".join(f"{x:.6f}" for x in p)
            + (f" {c[0]} {c[1]} {c[2]} 255" if per == "vertex" else "")
        )
    for t, c in zip(f, face_rgb, strict=True):
        lines.append(
            f"3 {t[0]} {t[1]} {t[2]}" + (f" {c[0]} {c[1]} {c[2]}" if per == "face" else "")
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_off_face_colours_and_ply_face_colours_come_along(tmp_path: Path) -> None:
    box, face_rgb = two_tone_box()
    assert_two_tone(load_mesh(write_off(tmp_path / "f.off", box, face_rgb, per="face")), "face")
    coloured = trimesh.Trimesh(box.vertices, box.faces, face_colors=face_rgb, process=False)
    path = tmp_path / "f.ply"
    path.write_bytes(coloured.export(file_type="ply"))
    assert_two_tone(load_mesh(path), "face")


def test_coff_vertex_colours_come_along(tmp_path: Path) -> None:
    sphere = coloured_sphere()
    rgb = np.tile(np.array([[10, 200, 30]], np.uint8), (len(sphere.faces), 1))
    mesh = load_mesh(write_off(tmp_path / "v.off", sphere, rgb, per="vertex"))
    assert mesh.visual.kind == "vertex"
    assert np.all(mesh.visual.vertex_colors[:, :3] == (10, 200, 30))
    plain = tmp_path / "plain.off"
    plain.write_text(sphere.export(file_type="off"))
    assert not load_mesh(plain).visual.kind  # no colours in the file: none invented


def test_an_off_with_comments_and_blank_lines_loads_without_crashing(tmp_path: Path) -> None:
    """CGAL's prim.off (a valid OFF: comments, a whitespace-only line, quads) made MeshLab's
    reader, which load_mesh asks for an OFF's colours, kill the process with a segmentation
    fault. Loaded in a child process here, so a crash fails this test and not the run."""
    import subprocess
    import sys

    box, face_rgb = two_tone_box()
    plain = write_off(tmp_path / "plain.off", box, face_rgb, per="face").read_text()
    header, counts, *body = plain.splitlines()
    vertices, faces = body[: len(box.vertices)], body[len(box.vertices) :]
    commented = tmp_path / "commented.off"
    commented.write_text(
        "\n".join([header, counts, "# vertices", *vertices, "  ", "# facets", *faces]) + "\n"
    )
    script = (
        "import sys, numpy as np; from sculptsvc.mesh import load_mesh; "
        "m = load_mesh(sys.argv[1]); "
        "print(len(m.faces), m.visual.kind, len(np.unique(m.visual.face_colors[:, :3], axis=0)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(commented)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(len(box.faces)), "face", "2"]


def write_coloured_3mf(path: Path, mesh: trimesh.Trimesh, face_rgb: np.ndarray) -> Path:
    """A 3MF whose red faces take a colour group's colour and the others the object's
    default base material (blue), as slicers store painted parts."""
    import lib3mf

    from mold.export import _wrapper, _write_buffer

    wrapper = _wrapper()
    model = wrapper.CreateModel()
    obj = model.AddMeshObject()
    verts = [lib3mf.Position(tuple(float(x) for x in p)) for p in mesh.vertices]
    tris = [lib3mf.Triangle(tuple(int(i) for i in t)) for t in mesh.faces]
    obj.SetGeometry(verts, tris)
    materials = model.AddBaseMaterialGroup()
    blue = materials.AddMaterial("blue", wrapper.RGBAToColor(*BLUE, 255))
    obj.SetObjectLevelProperty(materials.GetResourceID(), blue)
    group = model.AddColorGroup()
    red = group.AddColor(wrapper.RGBAToColor(*RED, 255))
    for i in np.flatnonzero((face_rgb == RED).all(axis=1)):
        obj.SetTriangleProperties(
            int(i), lib3mf.TriangleProperties(group.GetResourceID(), (red, red, red))
        )
    model.AddBuildItem(obj, wrapper.GetIdentityTransform())
    # through a buffer, as the mold does: lib3mf's WriteToFile leaves the process in the C locale
    path.write_bytes(_write_buffer(model.QueryWriter("3mf")))
    return path


def test_3mf_colour_groups_and_base_materials_come_along(tmp_path: Path) -> None:
    box, face_rgb = two_tone_box()
    mesh = load_mesh(write_coloured_3mf(tmp_path / "painted.3mf", box, face_rgb))
    assert len(mesh.faces) == len(box.faces)
    assert_two_tone(mesh, "face")


def test_painted_3mf_becomes_a_two_colour_glb_texture(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from sculptsvc.mesh import export_glb, process_mesh

    box, face_rgb = two_tone_box()
    result = process_mesh(
        load_mesh(write_coloured_3mf(tmp_path / "painted.3mf", box, face_rgb)),
        MeshParams(target_faces=2000, texture_size=256),
    )
    assert result.report.color_source == "face"
    scene = trimesh.load(io.BytesIO(export_glb(result)), file_type="glb")
    (glb_mesh,) = scene.geometry.values()
    image = glb_mesh.visual.material.baseColorTexture
    texels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    texels = texels.reshape(-1, 3).astype(int)
    red = (np.abs(texels - RED).max(axis=1) <= 8).mean()
    blue = (np.abs(texels - BLUE).max(axis=1) <= 8).mean()
    assert red > 0.25 and blue > 0.25  # about half each, blended only along the seam


def test_a_scene_of_differently_coloured_parts_keeps_every_parts_colours(tmp_path: Path) -> None:
    """Two textured boxes, a vertex-coloured ball and a plain ball in one GLB: concatenated
    into one trimesh visual they would lose every colour; each part keeps its own."""
    from PIL import Image

    from sculptsvc.mesh.colors import color_source_from_visual

    def textured_box(rgb: tuple[int, int, int], at: tuple[float, float, float]) -> trimesh.Trimesh:
        box = trimesh.creation.box(extents=(10.0, 10.0, 10.0))
        box.apply_translation(at)
        uv = np.random.default_rng(0).uniform(0, 1, (len(box.vertices), 2))
        image = Image.fromarray(np.full((8, 8, 3), rgb, np.uint8))
        # a PBR material of its own: trimesh writes a SimpleMaterial with a 0.4 tint factor
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
        box.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        return box

    ball = trimesh.creation.icosphere(subdivisions=2, radius=4.0)
    ball.apply_translation((0.0, 20.0, 0.0))
    ball.visual.vertex_colors = (10, 200, 30, 255)
    plain = trimesh.creation.icosphere(subdivisions=2, radius=4.0)
    plain.apply_translation((0.0, -20.0, 0.0))
    scene = trimesh.Scene(
        [textured_box(RED, (0.0, 0.0, 0.0)), textured_box(BLUE, (20.0, 0.0, 0.0)), ball, plain]
    )
    path = tmp_path / "parts.glb"
    path.write_bytes(scene.export(file_type="glb"))
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12 + 12 + 2 * len(ball.faces)
    source, kind = color_source_from_visual(mesh, uncoloured_hex="#808080")
    assert kind == "none+texture+vertex" and source is not None
    probes = np.array([[0, 0, 5.0], [20, 0, 5.0], [0, 24.0, 0], [0, -24.0, 0]])
    got = source(probes, np.tile([[0, 0, 1.0]], (4, 1)))[:, :3].tolist()
    assert got == [list(RED), list(BLUE), [10, 200, 30], [128, 128, 128]]


def test_untextured_material_colours_come_along(tmp_path: Path) -> None:
    """glTF's base colour factor (linear light: sRGB 229 for 0.784) and an OBJ's ``Kd`` are
    the colour of a part without texture; a glTF factor also tints a texture."""
    from PIL import Image

    from sculptsvc.mesh.colors import color_source_from_visual

    def box_with(material: object, at: float = 0.0, uv: bool = False) -> trimesh.Trimesh:
        box = trimesh.creation.box(extents=(10.0, 10.0, 10.0))
        box.apply_translation((at, 0.0, 0.0))
        coords = np.full((len(box.vertices), 2), 0.5) if uv else None
        box.visual = trimesh.visual.TextureVisuals(uv=coords, material=material)
        return box

    pbr = trimesh.visual.material.PBRMaterial
    plain_red = pbr(baseColorFactor=(200, 30, 30, 255))
    glb = tmp_path / "red.glb"
    glb.write_bytes(trimesh.Scene([box_with(plain_red)]).export(file_type="glb"))
    source, kind = color_source_from_visual(load_mesh(glb))
    assert kind == "material"
    assert source is not None and source(np.zeros((1, 3)), np.zeros((1, 3)))[0].tolist() == [
        229,
        96,
        96,
        255,
    ]

    (tmp_path / "kd.mtl").write_text("newmtl red\nKd 0.8 0.1 0.1\n")
    box = trimesh.creation.box(extents=(10.0, 10.0, 10.0))
    lines = ["mtllib kd.mtl", *(f"v {x} {y} {z}" for x, y, z in box.vertices), "usemtl red"]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    (tmp_path / "kd.obj").write_text("\n".join(lines) + "\n")
    source, kind = color_source_from_visual(load_mesh(tmp_path / "kd.obj"))
    assert kind == "material" and source(np.zeros((1, 3)), np.zeros((1, 3)))[0, 0] == 204

    # CAD-like: two parts with plain colours; and a white texture tinted by its factor
    grey = Image.fromarray(np.full((4, 4, 3), 255, np.uint8))
    tinted = pbr(baseColorTexture=grey, baseColorFactor=(30, 30, 200, 255))
    scene = trimesh.Scene([box_with(plain_red), box_with(tinted, at=20.0, uv=True)])
    path = tmp_path / "cad.glb"
    path.write_bytes(scene.export(file_type="glb"))
    source, kind = color_source_from_visual(load_mesh(path))
    assert kind == "material+texture"
    got = source(np.array([[0, 0, 5.0], [20, 0, 5.0]]), np.zeros((2, 3)))[:, :3].tolist()
    assert got == [[229, 96, 96], [96, 96, 229]]


def test_3mf_texture_groups_come_along(tmp_path: Path) -> None:
    """A 3MF whose top faces map the red half of a texture and the others the blue half
    (3MF texture coordinates: v = 0 at the image's bottom row), beside one face left
    with a colour-group colour."""
    import io

    import lib3mf
    from PIL import Image

    from mold.export import _wrapper, _write_buffer

    box, face_rgb = two_tone_box()
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, :8], image[:, 8:] = RED, BLUE
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")

    wrapper = _wrapper()
    model = wrapper.CreateModel()
    obj = model.AddMeshObject()
    obj.SetGeometry(
        [lib3mf.Position(tuple(float(x) for x in p)) for p in box.vertices],
        [lib3mf.Triangle(tuple(int(i) for i in t)) for t in box.faces],
    )
    attachment = model.AddAttachment(
        "/3D/Textures/halves.png", "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dtexture"
    )
    attachment.ReadFromBuffer(list(png.getvalue()))
    texture = model.AddTexture2DFromAttachment(attachment)
    texture.SetContentType(lib3mf.TextureType.PNG)
    group = model.AddTexture2DGroup(texture)
    left = group.AddTex2Coord(lib3mf.Tex2Coord(0.25, 0.5))
    right = group.AddTex2Coord(lib3mf.Tex2Coord(0.75, 0.5))
    obj.SetObjectLevelProperty(group.GetResourceID(), left)  # lib3mf asks for a default
    for i, rgb in enumerate(face_rgb):
        pid = left if tuple(rgb) == RED else right
        obj.SetTriangleProperties(i, lib3mf.TriangleProperties(group.GetResourceID(), (pid,) * 3))
    colours = model.AddColorGroup()
    blue = colours.AddColor(wrapper.RGBAToColor(*BLUE, 255))
    bottom = int(np.flatnonzero((face_rgb == BLUE).all(axis=1))[0])
    obj.SetTriangleProperties(
        bottom, lib3mf.TriangleProperties(colours.GetResourceID(), (blue,) * 3)
    )
    model.AddBuildItem(obj, wrapper.GetIdentityTransform())
    path = tmp_path / "textured.3mf"
    # through a buffer, as the mold does: lib3mf's WriteToFile leaves the process in the C locale
    path.write_bytes(_write_buffer(model.QueryWriter("3mf")))
    assert_two_tone(load_mesh(path), "face+texture")


def test_draco_compressed_glb_loads_its_real_geometry(tmp_path: Path) -> None:
    """Web GLBs are often Draco-compressed; trimesh decodes them only through DracoPy and
    otherwise loads every position as zero."""
    import DracoPy

    ball = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    blob = DracoPy.encode(ball.vertices.astype(np.float32), ball.faces.astype(np.uint32))
    decoded = DracoPy.decode(blob)
    draco = {"bufferView": 0, "attributes": {"POSITION": 0}}
    doc = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_draco_mesh_compression"],
        "extensionsRequired": ["KHR_draco_mesh_compression"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0},
                        "indices": 1,
                        "extensions": {"KHR_draco_mesh_compression": draco},
                    }
                ]
            }
        ],
        "accessors": [
            {
                "componentType": 5126,
                "count": len(decoded.points),
                "type": "VEC3",
                "min": ball.vertices.min(axis=0).tolist(),
                "max": ball.vertices.max(axis=0).tolist(),
            },
            {"componentType": 5125, "count": len(decoded.faces) * 3, "type": "SCALAR"},
        ],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(blob)}],
        "buffers": [{"byteLength": len(blob) + (-len(blob) % 4)}],
    }
    path = tmp_path / "draco.glb"
    path.write_bytes(pack_glb(doc, blob))
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(ball.faces)
    solid, _ = repair(mesh, MeshParams())
    assert solid.volume == pytest.approx(ball.volume, rel=1e-3)  # Draco quantises positions


def test_a_glb_needing_an_undecodable_compression_is_refused_by_name(tmp_path: Path) -> None:
    doc, blob = unpack_glb(trimesh.creation.box().export(file_type="glb"))
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["EXT_meshopt_compression"]
    path = tmp_path / "meshopt.glb"
    path.write_bytes(pack_glb(doc, blob))
    with pytest.raises(UnreadableMesh, match="EXT_meshopt_compression") as info:
        load_mesh(path)
    assert info.value.detail["extensions"] == ["EXT_meshopt_compression"]


def test_quantized_glb_attributes_are_decoded_as_normalized(tmp_path: Path) -> None:
    """KHR_mesh_quantization (gltfpack's output): positions as normalized int16 with the
    scale on the node, texture coordinates as normalized uint16. trimesh reads the raw
    integers; the loader decodes them to floats first. Positions are 8-byte strided (a
    vertex attribute's elements are 4-byte aligned)."""
    from PIL import Image

    from sculptsvc.mesh.colors import color_source_from_visual

    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))
    v = box.vertices.repeat(1, axis=0)
    positions = np.zeros((len(v), 4), np.int16)
    positions[:, :3] = np.round(v / 10.0 * 32767)
    uv = np.where(v[:, :1] > 0, 0.75, 0.25) * np.ones((1, 2))  # +x half: right of the image
    texcoords = np.round(uv * 65535).astype(np.uint16)
    png = io.BytesIO()
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, :8], image[:, 8:] = RED, BLUE
    Image.fromarray(image).save(png, format="PNG")
    chunks = [positions.tobytes(), texcoords.tobytes(), box.faces.astype(np.uint32).tobytes()]
    chunks.append(png.getvalue())
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()
    doc = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "scale": [10.0, 10.0, 10.0]}],
        "meshes": [
            {
                "primitives": [
                    {"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}
                ]
            }
        ],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"source": 0}],
        "images": [{"bufferView": 3, "mimeType": "image/png"}],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5122,
                "normalized": True,
                "count": len(v),
                "type": "VEC3",
                "min": [-32767] * 3,
                "max": [32767] * 3,
            },
            {
                "bufferView": 1,
                "componentType": 5123,
                "normalized": True,
                "count": len(v),
                "type": "VEC2",
            },
            {"bufferView": 2, "componentType": 5125, "count": box.faces.size, "type": "SCALAR"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": offsets[0], "byteLength": len(chunks[0]), "byteStride": 8},
            {"buffer": 0, "byteOffset": offsets[1], "byteLength": len(chunks[1])},
            {"buffer": 0, "byteOffset": offsets[2], "byteLength": len(chunks[2])},
            {"buffer": 0, "byteOffset": offsets[3], "byteLength": len(chunks[3])},
        ],
        "buffers": [{"byteLength": sum(len(c) for c in chunks)}],
    }
    path = tmp_path / "quantized.glb"
    path.write_bytes(pack_glb(doc, b"".join(chunks)))
    mesh = load_mesh(path)
    assert np.allclose(mesh.vertices.min(axis=0), -10.0, atol=1e-3)
    assert np.allclose(mesh.vertices.max(axis=0), 10.0, atol=1e-3)
    source, kind = color_source_from_visual(mesh)
    assert kind == "texture"
    got = source(np.array([[10.0, 0, 0], [-10.0, 0, 0]]), np.zeros((2, 3)))[:, :3].tolist()
    assert got == [list(BLUE), list(RED)]


def test_binary_stl_facet_colours_come_along(tmp_path: Path) -> None:
    """VisCAM/SolidView colour STL: bit 15 marks a valid colour, 5 bits each of blue (low),
    green and red in every facet's attribute bytes; trimesh keeps only the raw bits."""
    box, face_rgb = two_tone_box()

    def rgb15(rgb: np.ndarray) -> int:
        r, g, b = (int(c) >> 3 for c in rgb)
        return (1 << 15) | (r << 10) | (g << 5) | b

    path = tmp_path / "colour.stl"
    with path.open("wb") as fh:
        fh.write(b"binary stl with VisCAM colours".ljust(80, b" "))
        fh.write(struct.pack("<I", len(box.faces)))
        for normal, tri, rgb in zip(box.face_normals, box.triangles, face_rgb, strict=True):
            fh.write(np.asarray(normal, "<f4").tobytes() + np.asarray(tri, "<f4").tobytes())
            fh.write(struct.pack("<H", rgb15(rgb)))
    mesh = load_mesh(path)
    assert mesh.visual.kind == "face"
    expected = (face_rgb.astype(int) >> 3) << 3  # 5 bits a channel
    got = np.asarray(mesh.visual.face_colors)[:, :3].astype(int)
    assert np.abs(got - expected).max() <= 8
    plain = tmp_path / "plain.stl"
    plain.write_bytes(box.export(file_type="stl"))  # attribute bytes all zero
    assert not load_mesh(plain).visual.kind


GREEN, WHITE = (20, 200, 40), (250, 250, 250)


def _quadrant_box_glb(texcoords: list[np.ndarray], texture_info: dict[str, object]) -> bytes:
    """A 20 mm box whose base colour texture has four quadrants (glTF's v runs down: top-left
    RED, top-right BLUE, bottom-left GREEN, bottom-right WHITE), with the given coordinate
    sets (float32, one row per vertex) and base colour textureInfo."""
    from PIL import Image

    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))
    image = np.zeros((16, 16, 3), np.uint8)
    image[:8, :8], image[:8, 8:], image[8:, :8], image[8:, 8:] = RED, BLUE, GREEN, WHITE
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    chunks = [np.asarray(box.vertices, "<f4").tobytes()]
    chunks += [np.asarray(uv, "<f4").tobytes() for uv in texcoords]
    chunks += [box.faces.astype("<u4").tobytes(), png.getvalue()]
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()
    n, sets = len(box.vertices), len(texcoords)
    attributes = {"POSITION": 0} | {f"TEXCOORD_{i}": i + 1 for i in range(sets)}
    accessors = [{"bufferView": 0, "componentType": 5126, "count": n, "type": "VEC3"}]
    accessors[0] |= {"min": box.vertices.min(axis=0).tolist()}
    accessors[0] |= {"max": box.vertices.max(axis=0).tolist()}
    accessors += [
        {"bufferView": i + 1, "componentType": 5126, "count": n, "type": "VEC2"}
        for i in range(sets)
    ]
    accessors.append(
        {"bufferView": sets + 1, "componentType": 5125, "count": box.faces.size, "type": "SCALAR"}
    )
    doc = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_texture_transform"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [
            {"primitives": [{"attributes": attributes, "indices": sets + 1, "material": 0}]}
        ],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": texture_info}}],
        "textures": [{"source": 0}],
        "images": [{"bufferView": sets + 2, "mimeType": "image/png"}],
        "accessors": accessors,
        "bufferViews": [
            {"buffer": 0, "byteOffset": o, "byteLength": len(c)}
            for o, c in zip(offsets, chunks, strict=True)
        ],
        "buffers": [{"byteLength": sum(len(c) for c in chunks)}],
    }
    return pack_glb(doc, b"".join(chunks))


def _colours_of(glb: bytes, tmp_path: Path) -> set[tuple[int, ...]]:
    """The colours the loaded mesh's colour source gives at 200 points over its surface."""
    from sculptsvc.mesh.colors import color_source_from_visual

    path = tmp_path / "textured.glb"
    path.write_bytes(glb)
    mesh = load_mesh(path)
    source, kind = color_source_from_visual(mesh)
    assert kind == "texture"
    points, faces = trimesh.sample.sample_surface(mesh, 200, seed=0)
    colours = source(points, mesh.face_normals[faces])[:, :3]
    return {tuple(int(c) for c in row) for row in colours}


def _corner_uv(lo: float, hi: float) -> np.ndarray:
    """Per-vertex UVs spanning [lo, hi]^2 with the box's x and y."""
    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))
    return lo + (hi - lo) * (box.vertices[:, :2] + 10.0) / 20.0


def test_a_glb_texture_transform_is_applied_to_the_base_colour(tmp_path: Path) -> None:
    """KHR_texture_transform (an atlas crop): trimesh samples the raw coordinates, which
    here span all four quadrants; the transform picks the top-right one."""
    transform = {"offset": [0.55, 0.05], "scale": [0.4, 0.4]}
    info = {"index": 0, "extensions": {"KHR_texture_transform": transform}}
    assert _colours_of(_quadrant_box_glb([_corner_uv(0.0, 1.0)], info), tmp_path) == {BLUE}


def test_a_glb_texture_rotation_turns_counter_clockwise_as_the_spec_says(
    tmp_path: Path,
) -> None:
    """Top-left coordinates turned a quarter counter-clockwise and moved down by one land
    in the bottom-left quadrant (turned the other way they would wrap to the top-right)."""
    transform = {"rotation": np.pi / 2, "offset": [0.0, 1.0]}
    info = {"index": 0, "extensions": {"KHR_texture_transform": transform}}
    assert _colours_of(_quadrant_box_glb([_corner_uv(0.05, 0.45)], info), tmp_path) == {GREEN}


def test_a_glb_base_colour_on_the_second_coordinate_set_is_sampled_there(
    tmp_path: Path,
) -> None:
    unused = np.full((8, 2), 0.75)  # set 0 points at the bottom-right (WHITE)
    info = {"index": 0, "texCoord": 1}
    glb = _quadrant_box_glb([unused, _corner_uv(0.05, 0.45)], info)
    assert _colours_of(glb, tmp_path) == {RED}


def test_a_part_a_float32_file_flattened_far_from_the_origin_is_refused_saying_so(
    tmp_path: Path,
) -> None:
    """A unit cube 1e7 from the origin, saved as binary STL: float32 keeps steps of 1.2
    there, so the file itself holds a flat part. The refusal says why, which "flat" alone
    did not; the same cube 1e3 away keeps its shape and passes."""
    from sculptsvc.errors import UnrepairableMesh
    from sculptsvc.mesh import process_mesh

    far = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    far.apply_translation((1e7, -1e7, 5e6))
    path = tmp_path / "far.stl"
    path.write_bytes(far.export(file_type="stl"))
    with pytest.raises(UnrepairableMesh, match=r"flat.*1e\+07 from the origin.*float32"):
        process_mesh(load_mesh(path), MeshParams(target_faces=500))
    near = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    near.apply_translation((1e3, -1e3, 5e2))
    path.write_bytes(near.export(file_type="stl"))
    assert process_mesh(load_mesh(path), MeshParams(target_faces=500)).report.watertight


def _package_3mf(path: Path, model: str) -> Path:
    """A 3MF package around one hand-written model part."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="application'
            '/vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" '
            'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/'
            '3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/'
            '2013/01/3dmodel"/></Relationships>',
        )
        archive.writestr("3D/3dmodel.model", model)
    return path


def _components_3mf(path: Path, box: trimesh.Trimesh) -> Path:
    """A 3MF assembly as slicers write projects: the build item places object 1, whose
    components place object 3 (itself a component of the box, turned 90 degrees about z)
    and the box again; transforms are 3MF's 12 numbers, row vectors."""
    vertices = "".join(f'<vertex x="{x}" y="{y}" z="{z}"/>' for x, y, z in box.vertices)
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in box.faces)
    turn = "0 1 0 -1 0 0 0 0 1 0 0 0"  # x -> y, y -> -x
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        "<resources>"
        f'<object id="2" type="model"><mesh><vertices>{vertices}</vertices>'
        f"<triangles>{triangles}</triangles></mesh></object>"
        f'<object id="3" type="model"><components><component objectid="2" transform="{turn}"/>'
        "</components></object>"
        '<object id="1" type="model"><components>'
        '<component objectid="3" transform="1 0 0 0 1 0 0 0 1 10 0 0"/>'
        '<component objectid="2" transform="1 0 0 0 1 0 0 0 1 -10 0 0"/>'
        "</components></object>"
        "</resources>"
        '<build><item objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 5"/></build></model>'
    )
    return _package_3mf(path, model)


def test_3mf_components_load_with_their_nested_transforms(tmp_path: Path) -> None:
    """Cura's ideagen3D_sapphire_plus.3mf (a build item whose object is a components
    object) was refused as holding no triangles: an assembly's meshes are one level (or
    more) down, each placed by its component's transform inside its parent's."""
    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    mesh = load_mesh(_components_3mf(tmp_path / "assembly.3mf", box))
    assert len(mesh.faces) == 2 * len(box.faces)
    first, second = mesh.vertices[: len(box.vertices)], mesh.vertices[len(box.vertices) :]
    turned = box.vertices[:, [1, 0, 2]] * (-1.0, 1.0, 1.0)  # (x, y) -> (-y, x)
    assert np.allclose(first, turned + np.array([10.0, 0.0, 5.0]))
    assert np.allclose(second, box.vertices + np.array([-10.0, 0.0, 5.0]))


def test_3mf_triangles_naming_a_vertex_twice_are_dropped_not_the_whole_file(
    tmp_path: Path,
) -> None:
    """lib3mf refuses a package for one triangle that names a vertex twice ("Invalid Model
    Coordinate Indices"); Cura ships such a file (cr-x.3mf: 18 of 19,670). Those triangles
    are dropped and the rest loads; a file broken otherwise is still refused, typed."""
    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    vertices = "".join(f'<vertex x="{x}" y="{y}" z="{z}"/>' for x, y, z in box.vertices)

    def model(extra: str) -> str:
        triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in box.faces)
        return (
            '<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" '
            'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
            f'<object id="1" type="model"><mesh><vertices>{vertices}</vertices>'
            f"<triangles>{triangles}{extra}</triangles></mesh></object></resources>"
            '<build><item objectid="1"/></build></model>'
        )

    degenerate = '<triangle v1="0" v2="0" v3="1"/><triangle v2="3" v1="5" v3="5"/>'
    mesh = load_mesh(_package_3mf(tmp_path / "degenerate.3mf", model(degenerate)))
    assert np.array_equal(mesh.faces, box.faces)
    with pytest.raises(UnreadableMesh, match="as 3MF"):
        load_mesh(_package_3mf(tmp_path / "broken.3mf", model('<triangle v1="0" v2="1" v3="99"/>')))


def test_3mf_components_that_multiply_or_cycle_are_refused_or_skipped(tmp_path: Path) -> None:
    """Two references per level double the placements: 16 levels ask for 65,536 boxes,
    refused as unreadable (not hours of reading); a component that refers back to its own
    assembly (invalid) is skipped, and the rest loads."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    vertices = "".join(f'<vertex x="{x}" y="{y}" z="{z}"/>' for x, y, z in box.vertices)
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in box.faces)
    mesh = (
        f'<object id="1" type="model"><mesh><vertices>{vertices}</vertices>'
        f"<triangles>{triangles}</triangles></mesh></object>"
    )

    def package(name: str, objects: str, top: int) -> Path:
        model = (
            '<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" '
            'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
            f'{mesh}{objects}</resources><build><item objectid="{top}"/></build></model>'
        )
        return _package_3mf(tmp_path / name, model)

    doubling = "".join(
        f'<object id="{n}" type="model"><components>'
        f'<component objectid="{n - 1}"/><component objectid="{n - 1}" '
        'transform="1 0 0 0 1 0 0 0 1 2 0 0"/></components></object>'
        for n in range(2, 18)
    )
    with pytest.raises(UnreadableMesh, match="more than"):
        load_mesh(package("doubling.3mf", doubling, 17))

    cycle = (
        '<object id="2" type="model"><components><component objectid="1"/>'
        '<component objectid="3"/></components></object>'
        '<object id="3" type="model"><components><component objectid="2"/>'
        "</components></object>"
    )
    try:
        loaded = load_mesh(package("cycle.3mf", cycle, 2))
    except UnreadableMesh:
        return  # lib3mf itself may refuse a cyclic package: typed either way
    assert len(loaded.faces) == len(box.faces)
