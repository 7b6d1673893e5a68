"""A small, byte-deterministic GLB writer for one textured or plain triangle mesh.

Why not trimesh's exporter: we would have to post-process nearly every part of its tree
(bufferView targets, float-exact colour factors instead of uint8, material extensions,
generator string), and its layout may change between trimesh versions, which would change
the bytes QA compares. Writing the few objects glTF 2.0 needs ourselves keeps the output
a pure function of the arrays: fixed object order, fixed JSON formatting, no timestamps.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_GLB_MAGIC = 0x46546C67  # "glTF"
_GLB_VERSION = 2
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT = 5126
_UNSIGNED_SHORT = 5123
_UNSIGNED_INT = 5125
_TRIANGLES = 4
_LINEAR = 9729
_LINEAR_MIPMAP_LINEAR = 9987
_CLAMP_TO_EDGE = 33071
GENERATOR = "sculptsvc mesh stage"


@dataclass(frozen=True)
class PbrMaterial:
    """Metallic-roughness material with optional clear-coat and IOR extensions.

    base_color: linear RGBA factor; texture_png: baseColorTexture (sRGB PNG bytes) or None.
    """

    name: str
    base_color: tuple[float, float, float, float]
    metallic: float
    roughness: float
    clearcoat: float | None = None
    clearcoat_roughness: float | None = None
    ior: float | None = None
    texture_png: bytes | None = None


@dataclass
class _Builder:
    blob: bytearray = field(default_factory=bytearray)
    views: list[dict[str, Any]] = field(default_factory=list)
    accessors: list[dict[str, Any]] = field(default_factory=list)

    def view(self, data: bytes, target: int | None) -> int:
        self.blob.extend(b"\x00" * (-len(self.blob) % 4))
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.views.append(view)
        return len(self.views) - 1

    def accessor(
        self, array: np.ndarray, component: int, kind: str, target: int, bounds: bool = False
    ) -> int:
        accessor: dict[str, Any] = {
            "bufferView": self.view(array.tobytes(), target),
            "componentType": component,
            "count": int(array.shape[0]),
            "type": kind,
        }
        if bounds:
            accessor["min"] = [float(v) for v in array.min(axis=0)]
            accessor["max"] = [float(v) for v in array.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def unit_normals(normals: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """float32 unit vectors (the validator checks |n| = 1); zero vectors get ``fallback``."""
    n = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=1)
    bad = ~(length > 1e-12)
    if bad.any():
        n = n.copy()
        n[bad] = fallback[bad] if fallback is not None else (0.0, 0.0, 1.0)
        length = np.linalg.norm(n, axis=1)
    return (n / length[:, None]).astype(np.float32)


def _material_json(material: PbrMaterial, texture: int | None) -> dict[str, Any]:
    pbr: dict[str, Any] = {
        "baseColorFactor": [float(c) for c in material.base_color],
        "metallicFactor": float(material.metallic),
        "roughnessFactor": float(material.roughness),
    }
    if texture is not None:
        pbr["baseColorTexture"] = {"index": texture}
    out: dict[str, Any] = {"name": material.name, "pbrMetallicRoughness": pbr}
    extensions: dict[str, Any] = {}
    if material.clearcoat is not None:
        coat: dict[str, Any] = {"clearcoatFactor": float(material.clearcoat)}
        if material.clearcoat_roughness is not None:
            coat["clearcoatRoughnessFactor"] = float(material.clearcoat_roughness)
        extensions["KHR_materials_clearcoat"] = coat
    if material.ior is not None:
        extensions["KHR_materials_ior"] = {"ior": float(material.ior)}
    if extensions:
        out["extensions"] = extensions
    return out


METRES_PER_MM = 0.001  # the node scale of the service's GLBs: buffers in mm, viewers get metres


def build_glb(
    *,
    positions: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    material: PbrMaterial,
    uv: np.ndarray | None = None,
    name: str = "sculpture",
    unit_scale: float = 1.0,
) -> bytes:
    """GLB bytes of one mesh; positions (n, 3), normals (n, 3) unit, faces (m, 3), uv (n, 2).

    ``unit_scale`` becomes the node scale (metres per input unit: 0.001 for millimetres),
    so the buffer keeps the exact input coordinates and viewers still get metres.
    """
    if (material.texture_png is None) != (uv is None):
        raise ValueError("a texture needs UVs and UVs need a texture")
    b = _Builder()
    pos = np.ascontiguousarray(positions, dtype=np.float32)
    index_type = _UNSIGNED_SHORT if len(pos) < 0xFFFF else _UNSIGNED_INT
    index_dtype = np.uint16 if index_type == _UNSIGNED_SHORT else np.uint32
    idx = np.ascontiguousarray(np.asarray(faces).reshape(-1), dtype=index_dtype)
    attributes: dict[str, int] = {}
    indices = b.accessor(idx, index_type, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    attributes["POSITION"] = b.accessor(pos, _FLOAT, "VEC3", _ARRAY_BUFFER, bounds=True)
    attributes["NORMAL"] = b.accessor(
        np.ascontiguousarray(normals, dtype=np.float32), _FLOAT, "VEC3", _ARRAY_BUFFER
    )
    if uv is not None:
        attributes["TEXCOORD_0"] = b.accessor(
            np.ascontiguousarray(uv, dtype=np.float32), _FLOAT, "VEC2", _ARRAY_BUFFER
        )

    gltf: dict[str, Any] = {"asset": {"version": "2.0", "generator": GENERATOR}}
    extensions_used = []
    if material.clearcoat is not None:
        extensions_used.append("KHR_materials_clearcoat")
    if material.ior is not None:
        extensions_used.append("KHR_materials_ior")
    if extensions_used:
        gltf["extensionsUsed"] = extensions_used
    node: dict[str, Any] = {"name": name, "mesh": 0}
    if unit_scale != 1.0:
        node["scale"] = [float(unit_scale)] * 3
    gltf["scene"] = 0
    gltf["scenes"] = [{"name": name, "nodes": [0]}]
    gltf["nodes"] = [node]
    primitive = {"attributes": attributes, "indices": indices, "material": 0, "mode": _TRIANGLES}
    gltf["meshes"] = [{"name": name, "primitives": [primitive]}]
    texture = None
    if material.texture_png is not None:
        image_view = b.view(material.texture_png, None)
        gltf["samplers"] = [
            {
                "magFilter": _LINEAR,
                "minFilter": _LINEAR_MIPMAP_LINEAR,
                "wrapS": _CLAMP_TO_EDGE,
                "wrapT": _CLAMP_TO_EDGE,
            }
        ]
        gltf["images"] = [
            {"name": f"{name}-basecolor", "bufferView": image_view, "mimeType": "image/png"}
        ]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
        texture = 0
    gltf["materials"] = [_material_json(material, texture)]
    gltf["accessors"] = b.accessors
    gltf["bufferViews"] = b.views
    b.blob.extend(b"\x00" * (-len(b.blob) % 4))
    gltf["buffers"] = [{"byteLength": len(b.blob)}]
    return pack_glb(gltf, bytes(b.blob))


def unpack_glb(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(glTF JSON, BIN chunk bytes or b"") of a GLB container; None when ``data`` is not one
    (readers then name the problem)."""
    if len(data) < 20:
        return None
    magic, version, _total = struct.unpack_from("<III", data, 0)
    json_length, json_type = struct.unpack_from("<II", data, 12)
    if magic != _GLB_MAGIC or version != _GLB_VERSION or json_type != _CHUNK_JSON:
        return None
    try:
        gltf = json.loads(data[20 : 20 + json_length])
    except ValueError:
        return None
    blob = b""
    bin_start = 20 + json_length
    if len(data) >= bin_start + 8:
        bin_length, bin_type = struct.unpack_from("<II", data, bin_start)
        if bin_type == _CHUNK_BIN:
            blob = data[bin_start + 8 : bin_start + 8 + bin_length]
    return (gltf, blob) if isinstance(gltf, dict) else None


def pack_glb(gltf: dict[str, Any], blob: bytes) -> bytes:
    """GLB container: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    text = json.dumps(gltf, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\x00" * (-len(blob) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, total),
            struct.pack("<II", len(text), _CHUNK_JSON),
            text,
            struct.pack("<II", len(blob), _CHUNK_BIN),
            blob,
        ]
    )
