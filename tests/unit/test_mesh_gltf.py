"""GLB structure (material, extensions, targets, units) and byte-determinism for QA replays."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import trimesh

from sculptsvc.mesh import MeshParams, export_glb, process_mesh

PARAMS = MeshParams(target_faces=1_500, texture_size=256)


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    magic, version, total = struct.unpack_from("<III", data, 0)
    assert magic == 0x46546C67 and version == 2 and total == len(data)
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    gltf = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    return gltf, data[28 + json_len : 28 + json_len + bin_len]


def accessor_array(gltf: dict, blob: bytes, index: int) -> np.ndarray:
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc["type"]]
    raw = blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    return np.frombuffer(raw, dtype=dtype).reshape(acc["count"], width)


def bumpy_sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=20.0)
    bump = 1.0 + 0.05 * np.sin(3 * mesh.vertices[:, :1])
    return trimesh.Trimesh(mesh.vertices * bump, mesh.faces, process=False)


@pytest.fixture(scope="module")
def processed():
    return process_mesh(bumpy_sphere(), PARAMS)


def test_solid_glb_has_linear_colour_and_silicone_extensions(processed) -> None:
    gltf, blob = parse_glb(export_glb(processed, mode="solid", color_hex="#808080"))
    material = gltf["materials"][0]
    pbr = material["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"][:3] == pytest.approx([0.21586] * 3, abs=1e-5)
    assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] <= 0.5
    assert "baseColorTexture" not in pbr and "textures" not in gltf
    ext = material["extensions"]
    assert ext["KHR_materials_clearcoat"]["clearcoatFactor"] == pytest.approx(1.0)
    assert ext["KHR_materials_clearcoat"]["clearcoatRoughnessFactor"] <= 0.1
    assert ext["KHR_materials_ior"]["ior"] == pytest.approx(1.41)
    assert set(gltf["extensionsUsed"]) == {"KHR_materials_clearcoat", "KHR_materials_ior"}
    assert "extensionsRequired" not in gltf
    prim = gltf["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION", "NORMAL"}
    assert gltf["nodes"][0]["scale"] == [0.001] * 3  # millimetres -> metres
    indices = accessor_array(gltf, blob, prim["indices"]).reshape(-1, 3)
    assert len(indices) == processed.report.triangles
    normals = accessor_array(gltf, blob, prim["attributes"]["NORMAL"])
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def test_every_buffer_view_has_its_target(processed) -> None:
    gltf, _ = parse_glb(export_glb(processed, mode="multicolor"))
    image_views = {img["bufferView"] for img in gltf["images"]}
    for i, view in enumerate(gltf["bufferViews"]):
        if i in image_views:
            assert "target" not in view
        else:
            assert view["target"] in (34962, 34963)
        assert view["byteOffset"] % 4 == 0


def test_multicolor_glb_carries_uvs_and_a_png_texture(processed) -> None:
    gltf, blob = parse_glb(export_glb(processed, mode="multicolor", color_hex="#3366CC"))
    prim = gltf["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    uv = accessor_array(gltf, blob, prim["attributes"]["TEXCOORD_0"])
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    pbr = gltf["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorTexture"] == {"index": 0}
    view = gltf["bufferViews"][gltf["images"][0]["bufferView"]]
    png = blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # Same triangle count as the processed mesh (vertices are split at UV seams).
    assert accessor_array(gltf, blob, prim["indices"]).size == 3 * processed.report.triangles


def test_same_input_gives_the_same_bytes_in_both_modes() -> None:
    digests = []
    for _ in range(2):
        result = process_mesh(bumpy_sphere(), PARAMS)
        digests.append(
            (
                hashlib.sha256(export_glb(result, mode="multicolor")).hexdigest(),
                hashlib.sha256(export_glb(result, mode="solid", color_hex="#AA5500")).hexdigest(),
            )
        )
    assert digests[0] == digests[1]


def test_unknown_mode_and_bad_colour_are_refused(processed) -> None:
    from sculptsvc.errors import InvalidEvent

    with pytest.raises(ValueError, match="mode"):
        export_glb(processed, mode="chrome")  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent):
        export_glb(processed, mode="solid", color_hex="blue")


def test_unpack_glb_reads_back_what_pack_glb_wrote() -> None:
    from sculptsvc.mesh.gltf import pack_glb, unpack_glb

    doc = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 8}]}
    blob = bytes(range(6))
    assert unpack_glb(pack_glb(doc, blob)) == (doc, blob + b"\0\0")  # BIN padded to 4
    assert unpack_glb(b"glTF" + bytes(30)) is None  # not a GLB of version 2 with JSON
    assert unpack_glb(b'{"asset": {}}') is None  # a .gltf is not a GLB
