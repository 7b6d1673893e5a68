"""Byte-exact exporters: binary STL and 3MF (written and read back through lib3mf).

Both return bytes; the CLI adapter is the only place that writes files. Output is a pure
function of the geometry: fixed STL header, canonical vertex/face order, 3MF UUIDs derived
from the content, lib3mf's fixed zip timestamps, fixed coordinate precision.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mold.geometry import component_count, weld_rows

if TYPE_CHECKING:
    import lib3mf

STL_HEADER_SIZE = 80
STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_UUID_NAMESPACE = uuid.UUID("5d7c7a52-5a0b-4a37-9a53-4d6f6c643346")  # "sculptsvc mold"


# --- STL -----------------------------------------------------------------------------------


def stl_bytes(vertices: np.ndarray, faces: np.ndarray, header: str) -> bytes:
    """Binary STL of ``(n, 3) float32`` vertices and ``(m, 3)`` faces (84 + 50 m bytes).

    The header must not start with ``solid`` (readers would take the file for ASCII STL).
    """
    if header.lower().startswith("solid"):
        raise ValueError("a binary STL header must not start with 'solid'")
    tris = vertices.astype(np.float32)[faces]
    cross = np.cross(
        (tris[:, 1] - tris[:, 0]).astype(np.float64), (tris[:, 2] - tris[:, 0]).astype(np.float64)
    )
    length = np.linalg.norm(cross, axis=1, keepdims=True)
    normals = np.divide(cross, length, out=np.zeros_like(cross), where=length > 0)
    records = np.zeros(len(faces), dtype=STL_RECORD)
    records["normal"] = normals.astype(np.float32)
    records["corners"] = tris
    head = header.encode("ascii")[:STL_HEADER_SIZE].ljust(STL_HEADER_SIZE, b" ")
    return head + struct.pack("<I", len(faces)) + records.tobytes()


def parse_stl(data: bytes) -> np.ndarray:
    """``(m, 3, 3) float32`` triangle corners of a binary STL; raises ``ValueError`` if bad."""
    if len(data) < STL_HEADER_SIZE + 4:
        raise ValueError("too short for a binary STL")
    (count,) = struct.unpack_from("<I", data, STL_HEADER_SIZE)
    if len(data) != STL_HEADER_SIZE + 4 + count * STL_RECORD.itemsize:
        raise ValueError(f"binary STL size does not match its {count} triangles")
    records = np.frombuffer(data, dtype=STL_RECORD, count=count, offset=STL_HEADER_SIZE + 4)
    return records["corners"].copy()


@dataclass(frozen=True)
class EdgeReport:
    """Topology of an STL after welding corners by exact position, as slicers do."""

    triangles: int
    vertices: int
    edges: int
    boundary_edges: int  # used by one triangle
    overshared_edges: int  # used by three or more
    misoriented_edges: int  # two triangles traverse it in the same direction
    collapsed_triangles: int  # two corners welded into one
    shells: int

    @property
    def closed_two_manifold(self) -> bool:
        return (
            self.boundary_edges == 0
            and self.overshared_edges == 0
            and self.misoriented_edges == 0
            and self.collapsed_triangles == 0
        )


def _run_lengths(keys: np.ndarray) -> np.ndarray:
    """How often each distinct value occurs (``np.unique(..., return_counts=True)[1]``)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    ordered = np.sort(keys)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return np.diff(np.append(starts, len(ordered)))


def stl_edge_report(data: bytes) -> EdgeReport:
    """Weld an STL by position and count how each edge is used."""
    tris = parse_stl(data)
    corners = tris.reshape(-1, 3) + np.float32(0.0)  # -0.0 and 0.0 are one position
    _, inverse = weld_rows(corners)
    faces = inverse.reshape(-1, 3)
    n_vertices = int(faces.max()) + 1 if len(faces) else 0
    collapsed = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )
    good = faces[~collapsed]
    directed = np.concatenate([good[:, [0, 1]], good[:, [1, 2]], good[:, [2, 0]]])
    a, b = directed[:, 0], directed[:, 1]
    counts = _run_lengths(np.minimum(a, b) * n_vertices + np.maximum(a, b))
    # a directed edge used twice means two neighbours disagree on orientation
    misoriented = int((_run_lengths(a * n_vertices + b) > 1).sum())
    shells = component_count(n_vertices, directed) if n_vertices else 0
    # vertices only used by collapsed faces would count as extra shells; count used ones only
    isolated = int((np.bincount(good.ravel(), minlength=n_vertices) == 0).sum())
    return EdgeReport(
        triangles=len(faces),
        vertices=n_vertices,
        edges=len(counts),
        boundary_edges=int((counts == 1).sum()),
        overshared_edges=int((counts > 2).sum()),
        misoriented_edges=misoriented,
        collapsed_triangles=int(collapsed.sum()),
        shells=shells - isolated,
    )


# --- 3MF -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _wrapper() -> lib3mf.Wrapper:
    """One lib3mf wrapper per process (loading the shared library is not free). Imported
    here: the mesh stage imports this module for its STL checks, and needs no 3MF."""
    import lib3mf

    return lib3mf.get_wrapper()


@dataclass(frozen=True)
class MeshObject:
    """A named mesh for the 3MF build, placed by a translation (mm)."""

    name: str
    vertices: np.ndarray  # (n, 3) float32
    faces: np.ndarray  # (m, 3) uint32
    translation: tuple[float, float, float]


def _content_uuid(digest: str, role: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{digest}/{role}"))


def lib3mf_bytes(owner: lib3mf.Base, function: Any) -> bytes:
    """The bytes of one of lib3mf's "ask the size, then fill" buffer calls,
    ``function(handle, count, needed, buffer)``, on ``owner`` (a writer, an attachment):
    the binding's own wrappers return a Python list of ints; ctypes gives bytes."""
    w = owner._wrapper
    needed = ctypes.c_uint64(0)
    w.checkError(owner, function(owner._handle, ctypes.c_uint64(0), needed, (ctypes.c_uint8 * 0)()))
    buffer = (ctypes.c_uint8 * needed.value)()
    w.checkError(owner, function(owner._handle, ctypes.c_uint64(needed.value), needed, buffer))
    return bytes(buffer)


def _write_buffer(writer: lib3mf.Writer) -> bytes:
    """``Writer.WriteToBuffer`` as bytes."""
    return lib3mf_bytes(writer, writer._wrapper.lib.lib3mf_writer_writetobuffer)


def three_mf_bytes(objects: list[MeshObject], decimals: int) -> bytes:
    """A 3MF package (unit: millimetre) holding every object as one build item."""
    import lib3mf

    wrapper = _wrapper()
    model = wrapper.CreateModel()
    model.SetUnit(lib3mf.ModelUnit.MilliMeter)
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(obj.name.encode())
        digest.update(np.ascontiguousarray(obj.vertices, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(obj.faces, dtype="<u4").tobytes())
    content = digest.hexdigest()
    model.SetBuildUUID(_content_uuid(content, "build"))
    for obj in objects:
        mesh = model.AddMeshObject()
        mesh.SetName(obj.name)
        mesh.SetUUID(_content_uuid(content, f"object/{obj.name}"))
        verts = np.ascontiguousarray(obj.vertices, dtype="<f4")
        faces = np.ascontiguousarray(obj.faces, dtype="<u4")
        positions = (lib3mf.Position * len(verts)).from_buffer_copy(verts.tobytes())
        triangles = (lib3mf.Triangle * len(faces)).from_buffer_copy(faces.tobytes())
        # the binding's SetGeometry copies each struct through Python; hand the arrays over
        wrapper.checkError(
            mesh,
            wrapper.lib.lib3mf_meshobject_setgeometry(
                mesh._handle,
                ctypes.c_uint64(len(verts)),
                positions,
                ctypes.c_uint64(len(faces)),
                triangles,
            ),
        )
        item = model.AddBuildItem(mesh, wrapper.GetTranslationTransform(*obj.translation))
        item.SetUUID(_content_uuid(content, f"item/{obj.name}"))
    writer = model.QueryWriter("3mf")
    writer.SetDecimalPrecision(decimals)
    return _write_buffer(writer)


@dataclass(frozen=True)
class ThreeMfObject:
    name: str
    vertices: int
    triangles: int
    manifold_and_oriented: bool


@dataclass(frozen=True)
class ThreeMfReport:
    unit: str
    warnings: int
    objects: tuple[ThreeMfObject, ...]
    build_items: int


def read_3mf_strict(data: bytes) -> ThreeMfReport:
    """Read a 3MF with lib3mf in strict mode; lib3mf raises on anything non-conforming."""
    wrapper = _wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    reader.SetStrictModeActive(True)
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    size = ctypes.c_uint64(len(data))
    wrapper.checkError(
        reader, wrapper.lib.lib3mf_reader_readfrombuffer(reader._handle, size, buffer)
    )
    objects = []
    it = model.GetMeshObjects()
    while it.MoveNext():
        mesh = it.GetCurrentMeshObject()
        objects.append(
            ThreeMfObject(
                mesh.GetName(),
                mesh.GetVertexCount(),
                mesh.GetTriangleCount(),
                mesh.IsManifoldAndOriented(),
            )
        )
    items = model.GetBuildItems()
    n_items = 0
    while items.MoveNext():
        n_items += 1
    return ThreeMfReport(
        unit=model.GetUnit().name,
        warnings=reader.GetWarningCount(),
        objects=tuple(objects),
        build_items=n_items,
    )
