"""Reading input meshes into one trimesh, colours and textures kept.

Formats: OBJ, STL (ascii, binary), PLY (ascii, binary; faces or triangle strips; with or
without colours), OFF, GLB/glTF, 3MF. Readers, in order:

- trimesh for everything it parses (scenes flattened with their transforms; vertex colours
  and textures ride along in ``mesh.visual``);
- pymeshlab (VCG) where trimesh finds no triangles: PLY ``tristrips`` elements, which
  scanners and older tools write and trimesh ignores; and for colours trimesh's readers
  skip (an OFF's, a binary STL's per-facet colours); vertex and face colours are copied
  over;
- lib3mf (already a dependency of the mold exporter) for 3MF: trimesh's 3MF reader needs
  lxml, and lib3mf is the 3MF consortium's reference implementation. Colour groups and
  base materials (per triangle corner, or the object's default) come along as
  face-corner colours (``colors.CORNER_COLORS``), texture groups as corner UVs and their
  images (``colors.CORNER_TEXTURES``).

Anything unreadable raises :class:`~sculptsvc.errors.UnreadableMesh` naming the format and
what is wrong with the file (no triangles, a point cloud, a parser error).
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from mold.geometry import indices_out_of_range
from sculptsvc.errors import UnreadableMesh
from sculptsvc.logging import get_logger
from sculptsvc.mesh.colors import COLOR_PARTS, CORNER_COLORS, CORNER_TEXTURES, CornerTextures

log = get_logger(__name__)

FORMATS = {
    ".obj": "OBJ",
    ".stl": "STL",
    ".ply": "PLY",
    ".off": "OFF",
    ".glb": "glTF binary",
    ".gltf": "glTF",
    ".3mf": "3MF",
}
SUPPORTED_SUFFIXES = set(FORMATS)
_MESHLAB_SUFFIXES = {".ply", ".stl", ".obj", ".off"}  # where VCG can read what trimesh skips


def load_mesh(path: Path | str, *, colours: bool = True) -> trimesh.Trimesh:
    """One triangle mesh from a file; raises ``UnreadableMesh`` naming the format problem.

    ``process=False`` keeps vertices, faces and colours exactly as stored: repair decides
    what to weld, so the report can say what it changed. ``colours=False`` reads geometry
    only (the mold needs no texture: a GLB's 1024 px texture costs 25 ms to decode and copy).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UnreadableMesh(
            f"unsupported mesh format {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(sorted(FORMATS))}",
            path=str(path),
            format=suffix,
        )
    kind = FORMATS[suffix]
    if suffix == ".3mf":
        return _load_3mf(path, kind)
    data = path.read_bytes() if suffix in (".glb", ".gltf") else None
    if data is not None:
        _check_gltf_extensions(path, data, kind)
    problem = ""
    points = 0
    try:
        loaded = _load_trimesh(path, data, colours=colours)
    except IndexError as exc:
        # A face refers to a vertex the file does not have. MeshLab's readers do not check
        # that: they read past their arrays (a different wrong mesh on every run), so this
        # file does not go to them.
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: a face refers to a vertex the file does "
            f"not have ({exc})",
            path=str(path),
            format=kind,
        ) from exc
    except Exception as exc:  # trimesh raises many types for malformed files
        loaded, problem = None, f"{type(exc).__name__}: {exc}"
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
        if colours and _may_hold_colours_trimesh_skipped(loaded, suffix):
            coloured, _, _ = _load_meshlab(path)
            if coloured is not None and getattr(coloured.visual, "kind", None):
                return coloured
        return loaded
    if isinstance(loaded, trimesh.Trimesh | trimesh.PointCloud):
        points = len(loaded.vertices)
    if suffix in _MESHLAB_SUFFIXES:
        mesh, meshlab_points, meshlab_problem = _load_meshlab(path)
        if mesh is not None:
            return mesh
        points = max(points, meshlab_points)
        problem = problem or meshlab_problem
    if points and not problem:
        raise UnreadableMesh(
            f"{path.name} is a point cloud ({points} points, no triangles): "
            "a sculpture needs a surface mesh",
            path=str(path),
            format=kind,
            points=points,
        )
    raise UnreadableMesh(
        f"cannot read {path.name} as {kind}: {problem or 'the file holds no triangles'}",
        path=str(path),
        format=kind,
    )


_GLTF_UNDECODABLE = ("EXT_meshopt_compression", "KHR_meshopt_compression")
"""Geometry compressions trimesh's glTF reader cannot decode: it would read the compressed
bytes as positions. (KHR_draco_mesh_compression is decoded through DracoPy.)"""


def _check_gltf_extensions(path: Path, data: bytes, kind: str) -> None:
    """Refuse, naming it, a glTF (``data``: the file's bytes) that requires a geometry
    extension we cannot decode (rather than sculpting placeholder or garbage positions)."""
    required = set(_gltf_json(data).get("extensionsRequired", []))
    blocked = required & set(_GLTF_UNDECODABLE)
    if "KHR_draco_mesh_compression" in required:
        try:
            import DracoPy  # noqa: F401  (trimesh decodes Draco through it)
        except ImportError:
            blocked.add("KHR_draco_mesh_compression")
    if blocked:
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: it needs the glTF extension "
            f"{', '.join(sorted(blocked))}, which this service cannot decode; "
            "export it without that mesh compression",
            path=str(path),
            format=kind,
            extensions=sorted(blocked),
        )


def _gltf_json(data: bytes) -> dict[str, Any]:
    """The glTF JSON of a .gltf's or a GLB's bytes; {} when they are not readable as such
    (the reader then names the problem)."""
    import json

    from sculptsvc.mesh.gltf import unpack_glb

    unpacked = unpack_glb(data)
    if unpacked is not None:
        return unpacked[0]
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


_COMPONENT_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4"}
_TYPE_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _glb_for_trimesh(data: bytes) -> bytes | None:
    """The GLB rewritten where trimesh's reader would misread it; None when it reads right.

    - ``normalized`` integer accessors (KHR_mesh_quantization: texture coordinates,
      normals, colours as 8/16-bit) are decoded to float32, as the glTF spec says;
      trimesh reads the raw integers.
    - the base colour texture's coordinates are baked into ``TEXCOORD_0``: the set it names
      (``texCoord``) and its ``KHR_texture_transform`` (offset, rotation, scale: how
      exporters tile or crop an atlas); trimesh always samples set 0, untransformed.

    New accessors go at the end of the binary chunk; nothing already there moves.
    """
    from sculptsvc.mesh.gltf import pack_glb, unpack_glb

    unpacked = unpack_glb(data)
    if unpacked is None or not unpacked[1]:
        return None
    doc, original = unpacked
    binary = bytearray(original)
    decoded = _decode_normalized(doc, original, binary)
    baked = _bake_base_color_uv(doc, binary)
    if not (decoded or baked):
        return None
    binary += b"\0" * (-len(binary) % 4)
    doc["buffers"][0]["byteLength"] = len(binary)
    return pack_glb(doc, bytes(binary))


def _in_binary_chunk(doc: dict[str, Any], accessor: dict[str, Any]) -> bool:
    views = doc.get("bufferViews", [])
    return (
        "bufferView" in accessor
        and "sparse" not in accessor
        and views[accessor["bufferView"]].get("buffer", 0) == 0
    )


def _accessor_rows(doc: dict[str, Any], accessor: dict[str, Any], binary: bytes) -> np.ndarray:
    """An accessor's ``(count, width)`` values as stored (a view into ``binary``)."""
    view = doc["bufferViews"][accessor["bufferView"]]
    dtype = np.dtype(_COMPONENT_DTYPES.get(accessor["componentType"], "<f4"))
    width = _TYPE_WIDTH[accessor["type"]]
    stride = view.get("byteStride") or dtype.itemsize * width
    return np.ndarray(
        (accessor["count"], width),
        dtype,
        binary,
        offset=view.get("byteOffset", 0) + accessor.get("byteOffset", 0),
        strides=(stride, dtype.itemsize),
    )


def _append_float_view(doc: dict[str, Any], binary: bytearray, values: np.ndarray) -> int:
    """Append float32 ``values`` to the binary chunk as a new buffer view; its index."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    binary += b"\0" * (-len(binary) % 4)
    views = doc.setdefault("bufferViews", [])
    views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(data)})
    binary += data
    return len(views) - 1


def _decode_normalized(doc: dict[str, Any], original: bytes, binary: bytearray) -> bool:
    """Every ``normalized`` accessor of the binary chunk as float32 (unsigned c / max,
    signed max(c / max, -1)); whether there was one."""
    accessors = [
        a for a in doc.get("accessors", []) if a.get("normalized") and _in_binary_chunk(doc, a)
    ]
    for accessor in accessors:
        rows = _accessor_rows(doc, accessor, original)
        top = float(np.iinfo(rows.dtype).max)
        view = _append_float_view(doc, binary, np.maximum(rows / top, -1.0))
        accessor.update(bufferView=view, byteOffset=0, componentType=5126)
        del accessor["normalized"]
        for bound in ("min", "max"):
            if bound in accessor:
                accessor[bound] = np.maximum(np.asarray(accessor[bound]) / top, -1.0).tolist()
    return bool(accessors)


def _texture_transform(info: dict[str, Any]) -> tuple[int, np.ndarray | None]:
    """(the coordinate set, the 3x3 KHR_texture_transform matrix or None) of a textureInfo:
    translation x rotation x scale, rotation counter-clockwise in UV space (the spec's)."""
    transform = info.get("extensions", {}).get("KHR_texture_transform")
    if not isinstance(transform, dict):
        return int(info.get("texCoord", 0)), None
    ox, oy = transform.get("offset", [0.0, 0.0])
    sx, sy = transform.get("scale", [1.0, 1.0])
    r = float(transform.get("rotation", 0.0))
    c, s = np.cos(r), np.sin(r)
    matrix = (
        np.array([[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]])
        @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        @ np.diag([sx, sy, 1.0])
    )
    return int(transform.get("texCoord", info.get("texCoord", 0))), matrix


def _bake_base_color_uv(doc: dict[str, Any], binary: bytearray) -> bool:
    """Point each primitive's ``TEXCOORD_0`` at the coordinates its base colour texture
    samples, transformed; whether any primitive changed."""
    materials = doc.get("materials", [])
    accessors = doc.get("accessors", [])
    baked: dict[tuple[int, int], int] = {}  # (source accessor, material) -> new accessor
    rewritten: set[int] = set()  # materials whose coordinates are baked in
    for mesh in doc.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            index = primitive.get("material")
            if not isinstance(index, int) or not 0 <= index < len(materials):
                continue
            info = materials[index].get("pbrMetallicRoughness", {}).get("baseColorTexture")
            if not isinstance(info, dict):
                continue
            coord_set, matrix = _texture_transform(info)
            attributes = primitive.get("attributes", {})
            source = attributes.get(f"TEXCOORD_{coord_set}")
            if (coord_set == 0 and matrix is None) or not isinstance(source, int):
                continue
            if matrix is None:
                attributes["TEXCOORD_0"] = source  # another set, as stored
            elif _in_binary_chunk(doc, accessors[source]):
                if (source, index) not in baked:
                    uv = _accessor_rows(doc, accessors[source], binary).astype(np.float64)
                    uv = uv @ matrix[:2, :2].T + matrix[:2, 2]
                    view = _append_float_view(doc, binary, uv)
                    new = {"bufferView": view, "componentType": 5126, "type": "VEC2"}
                    accessors.append(new | {"count": len(uv)})
                    baked[(source, index)] = len(accessors) - 1
                attributes["TEXCOORD_0"] = baked[(source, index)]
            else:
                continue
            rewritten.add(index)
    for index in rewritten:  # what is baked in must not be applied again by a reader
        info = materials[index]["pbrMetallicRoughness"]["baseColorTexture"]
        info.pop("texCoord", None)
        info.get("extensions", {}).pop("KHR_texture_transform", None)
    return bool(rewritten)


def _load_trimesh(
    path: Path, data: bytes | None = None, *, colours: bool = True
) -> trimesh.Trimesh:
    """Every mesh of the file's scene, transforms applied, as one (``force="mesh"``).

    Parts with different colour carriers (two textures, a texture beside vertex colours)
    cannot share one trimesh visual: concatenating them drops every colour. Each part is
    then kept, as loaded, under ``colors.COLOR_PARTS`` for the colour source. ``data``:
    the file's bytes when the caller has read them already; ``colours=False``: no
    materials or textures are read."""
    import io

    source: Any = path
    file_type = None
    if path.suffix.lower() == ".glb":
        decoded = _glb_for_trimesh(path.read_bytes() if data is None else data)
        if decoded is not None:
            source, file_type = io.BytesIO(decoded), "glb"
    parts = [
        part
        for part in trimesh.load_scene(
            source, file_type=file_type, process=False, skip_materials=not colours
        ).dump()
        if isinstance(part, trimesh.Trimesh)
    ]
    mesh = trimesh.util.concatenate(parts)
    if len(parts) > 1 and any(getattr(part.visual, "kind", None) for part in parts):
        mesh.metadata[COLOR_PARTS] = parts
    return mesh


def _may_hold_colours_trimesh_skipped(mesh: trimesh.Trimesh, suffix: str) -> bool:
    """Colours trimesh's readers leave out, which MeshLab's read: an OFF's (``COFF`` vertex
    colours, colours after a face's indices), a binary STL's per-facet colours in the
    attribute bytes (VisCAM/SolidView bit 15, or Materialise's ``COLOR=`` header). An STL
    is re-read only when some attribute bytes are set: most exporters write zeros."""
    if getattr(mesh.visual, "kind", None):
        return False
    if suffix == ".off":
        return True
    attributes = getattr(mesh, "face_attributes", {}).get("stl")  # the raw 16 bits per facet
    return suffix == ".stl" and attributes is not None and bool(np.any(attributes))


def _plain_off_copy(path: Path, folder: Path) -> Path:
    """An ASCII OFF without its comments and blank lines, for MeshLab's reader: on a
    comment followed by a whitespace-only line it reads past its buffers and the process
    dies of a segmentation fault (CGAL's ``prim.off``, a valid file). Both are free-form
    in OFF, so dropping them changes no vertex, face or colour. A binary OFF is left as is.
    """
    data = path.read_bytes()
    if b"BINARY" in data.split(b"\n", 1)[0].upper():
        return path
    lines = (line.split(b"#", 1)[0].rstrip() for line in data.splitlines())
    copy = folder / "mesh.off"
    copy.write_bytes(b"\n".join(line for line in lines if line.strip()) + b"\n")
    return copy


def _load_meshlab(path: Path) -> tuple[trimesh.Trimesh | None, int, str]:
    """(mesh or None, vertex count, problem) from pymeshlab; keeps vertex colours."""
    import pymeshlab  # heavy; only for the files trimesh cannot triangulate

    ms = pymeshlab.MeshSet()
    # MeshLab changes the process's working directory to the file's folder and leaves it
    # there when a reader fails: every relative path of the process would then be wrong.
    with contextlib.chdir(Path.cwd()), contextlib.ExitStack() as stack:
        readable = path
        if path.suffix.lower() == ".off":
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            readable = _plain_off_copy(path, Path(folder))
        try:
            ms.load_new_mesh(str(Path(readable).resolve()))
        except Exception as exc:  # pymeshlab raises PyMeshLabException for any reader failure
            return None, 0, f"{type(exc).__name__}: {exc}"
    m = ms.current_mesh()
    if m.face_number() == 0:
        return None, m.vertex_number(), ""
    faces = np.asarray(m.face_matrix(), dtype=np.int64)
    if indices_out_of_range(faces, m.vertex_number()):
        return None, m.vertex_number(), "a face refers to a vertex the file does not have"

    def to_uint8(colors: np.ndarray) -> np.ndarray:
        return np.clip(np.round(colors * 255.0), 0, 255).astype(np.uint8)

    vertex_colors = to_uint8(m.vertex_color_matrix()) if m.has_vertex_color() else None
    face_colors = None  # vertex colours win where a file has both
    if vertex_colors is None and m.has_face_color():
        face_colors = to_uint8(m.face_color_matrix())
    mesh = trimesh.Trimesh(
        np.asarray(m.vertex_matrix(), dtype=np.float64),
        faces,
        vertex_colors=vertex_colors,
        face_colors=face_colors,
        process=False,
    )
    return mesh, m.vertex_number(), ""


_Affine3mf = tuple[np.ndarray, np.ndarray]  # (3x3 rotation, shift) on row vectors
_MAX_PLACEMENTS_3MF = 2_000
"""Mesh placements one 3MF may expand to: components may reference one object many times,
and nested, two references per level double them (a small file could ask for 2^32)."""


def _affine_3mf(transform: Any) -> _Affine3mf:
    """A lib3mf transform (4 rows x 3 columns, row vectors: ``p' = p @ rot + shift``)."""
    m = transform.Fields
    rot = np.array([[m[r][c] for c in range(3)] for r in range(3)], dtype=np.float64)
    shift = np.array([m[3][c] for c in range(3)], dtype=np.float64)
    return rot, shift


def _place_3mf(
    model: Any,
    resource: Any,
    placement: _Affine3mf,
    placed: list[tuple[Any, _Affine3mf]],
    path: frozenset[int] = frozenset(),
) -> None:
    """Append the mesh objects under a build item's object to ``placed``, each with its
    transform to the build space: a components object (an assembly, as slicers write their
    projects) places other objects, each by its own transform, inside its own space, and
    may nest. A component that refers back to an object on its own path (a cycle: invalid)
    is skipped; more than ``_MAX_PLACEMENTS_3MF`` placements raise ``ValueError``."""
    if resource.IsMeshObject():
        placed.append((model.GetMeshObjectByID(resource.GetResourceID()), placement))
        if len(placed) > _MAX_PLACEMENTS_3MF:
            raise ValueError(f"it places more than {_MAX_PLACEMENTS_3MF} meshes")
        return
    resource_id = resource.GetResourceID()
    if not resource.IsComponentsObject() or resource_id in path:
        return
    rot, shift = placement
    group = model.GetComponentsObjectByID(resource_id)
    for index in range(group.GetComponentCount()):
        component = group.GetComponent(index)
        inner_rot, inner_shift = (
            _affine_3mf(component.GetTransform())
            if component.HasTransform()
            else (np.eye(3), np.zeros(3))
        )
        # the component's transform first, then the one placing its parent
        composed = (inner_rot @ rot, inner_shift @ rot + shift)
        _place_3mf(model, component.GetObjectResource(), composed, placed, path | {resource_id})


def _read_3mf(wrapper: Any, data: bytes) -> Any:
    """A lib3mf model read from the package's bytes (strict mode off)."""
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    wrapper.checkError(
        reader,
        wrapper.lib.lib3mf_reader_readfrombuffer(
            reader._handle, ctypes.c_uint64(len(data)), buffer
        ),
    )
    return model


_TRIANGLE_3MF = re.compile(rb"<(?:\w+:)?triangle\b[^>]*?/>")
_CORNER_3MF = re.compile(rb'\bv([123])\s*=\s*"(\d+)"')


def _without_degenerate_triangles_3mf(data: bytes) -> tuple[bytes, int]:
    """The package with every triangle that names one vertex twice removed from its model
    parts, and how many went (0: the bytes as given). Not a zip: as given."""
    import io
    import zipfile

    dropped = 0

    def keep(match: re.Match[bytes]) -> bytes:
        nonlocal dropped
        corners = dict(_CORNER_3MF.findall(match.group(0)))
        if len(corners) == 3 and len(set(corners.values())) < 3:
            dropped += 1
            return b""
        return match.group(0)

    try:
        source = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                content = source.read(info)
                if info.filename.lower().endswith(".model"):
                    content = _TRIANGLE_3MF.sub(keep, content)
                target.writestr(info, content)
    except Exception:  # a damaged package (zlib.error, NotImplementedError, ...)
        return data, 0  # the first refusal stands
    return (out.getvalue(), dropped) if dropped else (data, 0)


def _read_3mf_tolerant(wrapper: Any, path: Path) -> Any:
    """The package read by lib3mf; if that fails and some triangles name a vertex twice,
    read again without them. lib3mf refuses a whole package for one such triangle (Cura's
    own cr-x.3mf has 18 among 19,670); readers that slicers use drop those, as repair
    would. Raises the first failure when there are none, else the second."""
    data = path.read_bytes()
    try:
        return _read_3mf(wrapper, data)
    except Exception:
        cleaned, dropped = _without_degenerate_triangles_3mf(data)
        if not dropped:
            raise
    model = _read_3mf(wrapper, cleaned)
    log.info("3mf_degenerate_triangles_dropped", file=path.name, triangles=dropped)
    return model


def _load_3mf(path: Path, kind: str) -> trimesh.Trimesh:
    """Every build item of a 3MF (lib3mf, strict off), transforms applied, one mesh."""
    import lib3mf

    wrapper = lib3mf.get_wrapper()
    placed: list[tuple[Any, _Affine3mf]] = []
    try:
        model = _read_3mf_tolerant(wrapper, path)
        items = model.GetBuildItems()
        while items.MoveNext():
            item = items.GetCurrent()
            placement = _affine_3mf(item.GetObjectTransform())
            _place_3mf(model, item.GetObjectResource(), placement, placed)
    except Exception as exc:  # lib3mf.ELib3MFException for any non-conforming package
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: {exc}", path=str(path), format=kind
        ) from exc
    parts = []
    read: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}  # each mesh object read once
    for obj, (rot, shift) in placed:
        key = obj.GetResourceID()
        if key not in read:
            vertices = np.array([p.Coordinates[0:3] for p in obj.GetVertices()], dtype=np.float64)
            faces = np.array([t.Indices[0:3] for t in obj.GetTriangleIndices()], dtype=np.int64)
            surface = _surface_3mf(wrapper, model, obj, len(faces)) if len(faces) else None
            read[key] = (vertices, faces, surface)
        vertices, faces, surface = read[key]
        if len(faces) == 0:
            continue
        parts.append((trimesh.Trimesh(vertices @ rot + shift, faces, process=False), surface))
    if not parts:
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: no build item holds triangles",
            path=str(path),
            format=kind,
        )
    meshes = [mesh for mesh, _ in parts]
    mesh = meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
    surfaces = [surface for _, surface in parts]
    if any(surface is not None for surface in surfaces):
        corner_colors, corner_uv, texture, images = [], [], [], []
        for part, surface in parts:
            m = len(part.faces)
            if surface is None:
                surface = _Surface3mf(
                    np.full((m, 3, 4), 255, np.uint8),
                    np.full((m, 3, 2), np.nan),
                    np.full(m, -1, dtype=np.int64),
                    [],
                )
            corner_colors.append(surface.corner_colors)
            corner_uv.append(surface.corner_uv)
            texture.append(np.where(surface.texture >= 0, surface.texture + len(images), -1))
            images.extend(surface.images)
        mesh.metadata[CORNER_COLORS] = np.concatenate(corner_colors)
        if images:
            mesh.metadata[CORNER_TEXTURES] = CornerTextures(
                np.concatenate(corner_uv), np.concatenate(texture), images
            )
    return mesh


@dataclass(frozen=True)
class _Surface3mf:
    """An object's triangle properties resolved: sRGBA per corner (white where a corner has
    no colour or material), and for textured triangles their corner UVs and texture."""

    corner_colors: np.ndarray  # (m, 3, 4) uint8
    corner_uv: np.ndarray  # (m, 3, 2) float64, NaN on untextured triangles
    texture: np.ndarray  # (m,) int64 index into ``images``, -1: untextured
    images: list[Any]  # PIL images


def _surface_3mf(wrapper: Any, model: Any, obj: Any, triangles: int) -> _Surface3mf | None:
    """The object's colour groups, base materials and texture groups per triangle corner
    (a triangle without a property takes the object's default); None when it has none of
    them. Composite and multi-property groups are not read."""
    import lib3mf

    buffer = (lib3mf.TriangleProperties * triangles)()
    needed = ctypes.c_uint64(0)
    # the binding's GetAllTriangleProperties builds a Python list of structs; read the array
    wrapper.checkError(
        obj,
        wrapper.lib.lib3mf_meshobject_getalltriangleproperties(
            obj._handle, ctypes.c_uint64(triangles), needed, buffer
        ),
    )
    props = np.frombuffer(buffer, dtype=np.uint32).reshape(triangles, 4).copy()
    default_resource, default_property, has_default = obj.GetObjectLevelProperty()
    if has_default:
        unset = props[:, 0] == 0
        props[unset, 0] = default_resource
        props[unset, 1:] = default_property
    if not props[:, 0].any():
        return None
    resources = props[:, [0, 0, 0]].reshape(-1)
    keys = np.column_stack([resources, props[:, 1:].reshape(-1)])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    colors = np.full((len(unique), 4), 255, np.uint8)
    uv = np.full((len(unique), 2), np.nan)
    texture_of = np.full(len(unique), -1, dtype=np.int64)
    images: list[Any] = []
    image_of_group: dict[int, int] = {}
    found = False
    for i, (resource, prop) in enumerate(unique.tolist()):
        if resource == 0:
            continue
        kind = model.GetPropertyTypeByID(resource)
        if kind == lib3mf.PropertyType.Colors:
            color = model.GetColorGroupByID(resource).GetColor(prop)
        elif kind == lib3mf.PropertyType.BaseMaterial:
            color = model.GetBaseMaterialGroupByID(resource).GetDisplayColor(prop)
        elif kind == lib3mf.PropertyType.TexCoord:
            group = model.GetTexture2DGroupByID(resource)
            if resource not in image_of_group:
                image_of_group[resource] = len(images)
                images.append(_texture_image_3mf(wrapper, group.GetTexture2D()))
            coord = group.GetTex2Coord(prop)
            uv[i] = (coord.U, coord.V)
            texture_of[i] = image_of_group[resource]
            found = True
            continue
        else:
            continue
        colors[i] = (color.Red, color.Green, color.Blue, color.Alpha)
        found = True
    if not found:
        return None
    corner = inverse.reshape(triangles, 3)
    return _Surface3mf(
        corner_colors=colors[corner],
        corner_uv=uv[corner],
        texture=texture_of[corner[:, 0]],
        images=images,
    )


def _texture_image_3mf(wrapper: Any, texture: Any) -> Any:
    """The PIL image of a 3MF Texture2D (PNG or JPEG attachment)."""
    import io

    from PIL import Image

    from mold.export import lib3mf_bytes

    attachment = texture.GetAttachment()
    data = lib3mf_bytes(attachment, wrapper.lib.lib3mf_attachment_writetobuffer)
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA")
