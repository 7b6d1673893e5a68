"""Positions and triangles of the common mesh files, read without importing trimesh.

``sculpt mold`` needs geometry only, and importing trimesh (with the scipy and networkx it
pulls in) takes about 0.28 s of a command that should finish in under a second. The files it
meets most are this service's own GLBs and binary STLs, and both are simple: one node, one
triangle primitive, float32 positions. Those are read here, with numpy only, into exactly
the arrays ``load_mesh(path, colours=False)`` gives (trimesh's readers with
``process=False``: same values, same order, same node transform arithmetic). Anything
else returns ``None``, and the caller uses ``load_mesh``, which reads every supported
format and names what is wrong with a broken file.

:func:`merge_close_vertices` is trimesh's ``Trimesh(..., process=True)`` weld, which the
mold command uses for every input, in numpy: a part welded here equals one welded there,
so the mold made from it is the same to the byte. Tests compare both against trimesh. Only
for a part under 1e-3 across does it weld finer than trimesh's absolute 1e-8, which would
join distinct vertices of a part a few micrometres long (:func:`weld_digits`).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

_STL_HEADER = 80
_STL_RECORD = 50  # normal, three corners (float32), attribute (uint16)
_FLOAT32 = 5126
_INDEX_DTYPES = {5121: "<u1", 5123: "<u2", 5125: "<u4"}
_TRIANGLES = 4
_IDENTITY4 = np.eye(4)
MERGE_DIGITS = 8  # trimesh's tol.merge = 1e-8: positions closer than this are one vertex
MERGE_SPAN_DIGITS = 5  # a part's weld stays 1e-5 of its extent or finer, however small it is


def read_geometry(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(vertices (n, 3) float64, faces (m, 3) int64)`` of a binary STL or a simple GLB, as
    trimesh reads them; ``None`` when the file is anything else (or empty, or broken)."""
    suffix = path.suffix.lower()
    if suffix == ".stl":
        return _binary_stl(path.read_bytes())
    if suffix == ".glb":
        return _simple_glb(path.read_bytes())
    return None


def merge_close_vertices(
    vertices: np.ndarray, faces: np.ndarray, digits: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weld vertices whose positions round to the same ``digits`` decimals, as trimesh's
    ``merge_vertices`` does: unreferenced vertices dropped, each kept vertex the first of its
    group, in order of first appearance.

    ``digits`` None: trimesh's 8 (1e-8), or more for a part smaller than 1e-3 in these
    units (:func:`weld_digits`): 1e-8 is an absolute distance, and a GLB of a part a few
    micrometres long (a mesh drawn in metres, read as millimetres) had distinct vertices
    welded together, which the mold then counted as faces through each other."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if len(vertices) == 0:
        return vertices, faces
    referenced = np.zeros(len(vertices), dtype=bool)
    if len(faces):
        referenced[faces] = True
    else:
        referenced[:] = True
    if digits is None:
        digits = weld_digits(vertices[referenced])
    keys = np.ascontiguousarray((vertices * 10**digits).round().astype(np.int64)[referenced])
    first, group = _equal_rows(keys)
    order = first.argsort()  # groups in order of their first vertex
    inverse = np.zeros(len(vertices), dtype=np.int64)
    inverse[referenced] = order.argsort()[group.ravel()]
    kept = np.flatnonzero(referenced)[first[order]]
    return vertices[kept], inverse[faces]


def weld_digits(points: np.ndarray) -> int:
    """Decimals of the weld for these points: trimesh's ``MERGE_DIGITS`` for a part at
    least 1e-3 across (every part of millimetre size in mm or metres: unchanged), more for
    a smaller one, so that the weld stays ``MERGE_SPAN_DIGITS`` decimals below its extent;
    never so many that the rounded positions leave int64."""
    finite = points[np.isfinite(points).all(axis=1)] if len(points) else points
    if len(finite) == 0:
        return MERGE_DIGITS
    extent = float(np.ptp(finite, axis=0).max())
    if extent <= 0.0:
        return MERGE_DIGITS
    wanted = int(np.ceil(-np.log10(extent))) + MERGE_SPAN_DIGITS
    reach = float(np.abs(finite).max())
    room = int(np.floor(np.log10(2.0**62 / max(reach, 1e-300))))
    return max(MERGE_DIGITS, min(wanted, room))


_ROW_HASH = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64
)  # odd 64-bit multipliers (golden ratio, xxHash primes): the three keys mixed into one word


def _equal_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each group of equal rows, group of each row) of ``(n, 3)`` int64,
    groups numbered in sorted order of any fixed key: what ``np.unique(rows as bytes,
    return_index=True, return_inverse=True)`` gives up to the group numbering.

    The rows are sorted by one 64-bit mix of their keys (an integer sort; sorting the
    24-byte rows as bytes took 2.1 s of a 1.3M-triangle STL's 3.9M corners, this 1.2 s),
    then every row is compared with its group's first: a collision (two different rows, one
    hash) is detected, never merged, and those keys are grouped the exact way instead."""
    mixed = keys.view(np.uint64) @ _ROW_HASH  # wraps modulo 2**64, deterministic
    mixed ^= mixed >> np.uint64(29)
    order = np.argsort(mixed, kind="stable")  # stable: a group's first row leads it
    ranked = mixed[order]
    starts = np.empty(len(ranked), dtype=bool)
    starts[:1] = True
    np.not_equal(ranked[1:], ranked[:-1], out=starts[1:])
    group_sorted = np.cumsum(starts) - 1
    in_order = keys[order]
    if not np.array_equal(in_order, in_order[starts][group_sorted]):
        rows = keys.view(np.dtype((np.void, keys.dtype.itemsize * 3))).ravel()
        _, first, group = np.unique(rows, return_index=True, return_inverse=True)
        return first, group.ravel()
    group = np.empty(len(keys), dtype=np.int64)
    group[order] = group_sorted
    return order[starts], group


def _binary_stl(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    if len(data) < _STL_HEADER + 4:
        return None
    (count,) = struct.unpack_from("<I", data, _STL_HEADER)
    if count == 0 or len(data) - _STL_HEADER - 4 != count * _STL_RECORD:
        return None  # ASCII, or a broken file: load_mesh reads or names it
    record = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    corners = np.frombuffer(data, dtype=record, count=count, offset=_STL_HEADER + 4)["corners"]
    vertices = corners.reshape(-1, 3).astype(np.float64)
    return vertices, np.arange(3 * count, dtype=np.int64).reshape(-1, 3)


def _simple_glb(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    from sculptsvc.mesh.gltf import unpack_glb

    unpacked = unpack_glb(data)
    if unpacked is None:
        return None
    doc, blob = unpacked
    try:
        return _single_primitive(doc, blob)
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # something unusual: the full reader decides


def _single_primitive(doc: dict[str, Any], blob: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The one triangle primitive of a scene of one root node, transformed; else None."""
    if doc.get("extensionsRequired"):
        return None
    nodes = doc.get("nodes", [])
    roots = doc["scenes"][doc.get("scene", 0)].get("nodes", [])
    if any("children" in nodes[i] or "camera" in nodes[i] for i in roots):
        return None
    with_mesh = [nodes[i] for i in roots if "mesh" in nodes[i]]
    if len(with_mesh) != 1 or len(set(roots)) != len(roots):
        return None
    node = with_mesh[0]
    primitives = doc["meshes"][node["mesh"]]["primitives"]
    if len(primitives) != 1 or "rotation" in node:
        return None
    primitive = primitives[0]
    if primitive.get("mode", _TRIANGLES) != _TRIANGLES or "targets" in primitive:
        return None
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    if position["componentType"] != _FLOAT32 or position["type"] != "VEC3":
        return None
    vertices = _accessor(doc, position, "<f4", 3, blob)
    if vertices is None:
        return None
    if "indices" in primitive:
        index = doc["accessors"][primitive["indices"]]
        dtype = _INDEX_DTYPES.get(index["componentType"])
        flat = _accessor(doc, index, dtype, 1, blob) if index["type"] == "SCALAR" else None
        if dtype is None or flat is None:
            return None
        flat = flat.ravel()
    else:
        flat = np.arange(len(vertices))
    if len(flat) == 0 or len(flat) % 3 or flat.max() >= len(vertices):
        return None
    faces = flat.astype(np.int64).reshape(-1, 3)
    return transformed_as_trimesh(vertices.astype(np.float64), faces, _node_matrix(node))


def _accessor(
    doc: dict[str, Any], accessor: dict[str, Any], dtype: str | None, width: int, blob: bytes
) -> np.ndarray | None:
    """An accessor of the BIN chunk as ``(count, width)`` rows; None for sparse, normalized
    or external data (trimesh's reader handles those)."""
    if dtype is None or "sparse" in accessor or accessor.get("normalized"):
        return None
    view = doc["bufferViews"][accessor["bufferView"]]
    if view.get("buffer", 0) != 0 or "uri" in doc["buffers"][0]:
        return None
    item = np.dtype(dtype).itemsize
    stride = view.get("byteStride") or item * width
    offset = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    count = accessor["count"]
    end = offset + (count - 1) * stride + item * width if count else offset
    if end > len(blob) or end > view.get("byteOffset", 0) + view["byteLength"]:
        return None
    return np.ndarray((count, width), dtype, blob, offset=offset, strides=(stride, item)).copy()


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    """The node's local matrix, composed as trimesh's glTF reader does (``M * T * S``)."""
    matrix = (
        np.array(node["matrix"], dtype=np.float64).reshape((4, 4)).T
        if "matrix" in node
        else _IDENTITY4
    )
    if "translation" in node:
        translation = np.eye(4)
        translation[:3, 3] = np.asarray(node["translation"], dtype=np.float64)[:3]
        matrix = np.dot(matrix, translation)
    if "scale" in node:
        matrix = np.dot(matrix, np.diag(np.concatenate((node["scale"], [1.0]))))
    return matrix


def transformed_as_trimesh(
    vertices: np.ndarray, faces: np.ndarray, matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``Trimesh.apply_transform``'s arithmetic: skipped for a near-identity (trimesh tests
    the spread of ``matrix - I``), a homogeneous product, winding flipped by a mirror."""
    if not np.isfinite(matrix).all():
        return None
    if float(np.ptp(matrix - _IDENTITY4)) < 1e-8:
        return vertices, faces
    if np.abs(matrix - _IDENTITY4).max() >= 1e-8:
        stack = np.column_stack((vertices, np.ones(len(vertices))))
        vertices = np.dot(matrix, stack.T).T[:, :3]
    linear = matrix[:3, :3]
    has_rotation = not float(np.ptp(linear - np.eye(3))) < 1e-6
    if has_rotation and np.linalg.det(linear) < 0.0:
        faces = np.ascontiguousarray(np.fliplr(faces))
    return np.ascontiguousarray(vertices), faces
