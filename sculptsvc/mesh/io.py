"""Reading input meshes into one trimesh, colours and textures kept.

Formats: OBJ, STL (ascii, binary), PLY (ascii, binary; faces or triangle strips; with or
without colours), OFF, GLB/glTF, 3MF. Readers, in order:

- trimesh for everything it parses (scenes flattened with their transforms; vertex colours
  and textures ride along in ``mesh.visual``);
- pymeshlab (VCG) where trimesh finds no triangles: PLY ``tristrips`` elements, which
  scanners and older tools write and trimesh ignores; vertex colours are copied over;
- lib3mf (already a dependency of the mold exporter) for 3MF: trimesh's 3MF reader needs
  lxml, and lib3mf is the 3MF consortium's reference implementation.

Anything unreadable raises :class:`~sculptsvc.errors.UnreadableMesh` naming the format and
what is wrong with the file (no triangles, a point cloud, a parser error).
"""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

import numpy as np
import trimesh

from sculptsvc.errors import UnreadableMesh

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


def load_mesh(path: Path | str) -> trimesh.Trimesh:
    """One triangle mesh from a file; raises ``UnreadableMesh`` naming the format problem.

    ``process=False`` keeps vertices, faces and colours exactly as stored: repair decides
    what to weld, so the report can say what it changed.
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
    problem = ""
    points = 0
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        loaded, problem = None, f"{type(exc).__name__}: {exc}"
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
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


def _load_meshlab(path: Path) -> tuple[trimesh.Trimesh | None, int, str]:
    """(mesh or None, vertex count, problem) from pymeshlab; keeps vertex colours."""
    import pymeshlab  # heavy; only for the files trimesh cannot triangulate

    ms = pymeshlab.MeshSet()
    # MeshLab changes the process's working directory to the file's folder and leaves it
    # there when a reader fails: every relative path of the process would then be wrong.
    with contextlib.chdir(Path.cwd()):
        try:
            ms.load_new_mesh(str(Path(path).resolve()))
        except Exception as exc:  # pymeshlab raises PyMeshLabException for any reader failure
            return None, 0, f"{type(exc).__name__}: {exc}"
    m = ms.current_mesh()
    if m.face_number() == 0:
        return None, m.vertex_number(), ""
    colors = None
    if m.has_vertex_color():
        colors = np.clip(np.round(m.vertex_color_matrix() * 255.0), 0, 255).astype(np.uint8)
    mesh = trimesh.Trimesh(
        np.asarray(m.vertex_matrix(), dtype=np.float64),
        np.asarray(m.face_matrix(), dtype=np.int64),
        vertex_colors=colors,
        process=False,
    )
    return mesh, m.vertex_number(), ""


def _load_3mf(path: Path, kind: str) -> trimesh.Trimesh:
    """Every build item of a 3MF (lib3mf, strict off), transforms applied, one mesh."""
    import lib3mf

    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    data = path.read_bytes()
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    try:
        wrapper.checkError(
            reader,
            wrapper.lib.lib3mf_reader_readfrombuffer(
                reader._handle, ctypes.c_uint64(len(data)), buffer
            ),
        )
    except Exception as exc:  # lib3mf.ELib3MFException for any non-conforming package
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: {exc}", path=str(path), format=kind
        ) from exc
    parts = []
    items = model.GetBuildItems()
    while items.MoveNext():
        item = items.GetCurrent()
        resource = item.GetObjectResource()
        if not resource.IsMeshObject():
            continue
        obj = model.GetMeshObjectByID(resource.GetResourceID())
        vertices = np.array([p.Coordinates[0:3] for p in obj.GetVertices()], dtype=np.float64)
        faces = np.array([t.Indices[0:3] for t in obj.GetTriangleIndices()], dtype=np.int64)
        if len(faces) == 0:
            continue
        m = item.GetObjectTransform().Fields  # 4 rows x 3 columns, row vectors
        rot = np.array([[m[r][c] for c in range(3)] for r in range(3)], dtype=np.float64)
        shift = np.array([m[3][c] for c in range(3)], dtype=np.float64)
        parts.append(trimesh.Trimesh(vertices @ rot + shift, faces, process=False))
    if not parts:
        raise UnreadableMesh(
            f"cannot read {path.name} as {kind}: no build item holds triangles",
            path=str(path),
            format=kind,
        )
    return parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)
