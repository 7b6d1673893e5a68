"""Reading input meshes (OBJ, PLY, STL, GLB/glTF, OFF) into one trimesh, colours kept."""

from __future__ import annotations

from pathlib import Path

import trimesh

from sculptsvc.errors import UnrepairableMesh

SUPPORTED_SUFFIXES = {".obj", ".ply", ".stl", ".glb", ".gltf", ".off"}


def load_mesh(path: Path | str) -> trimesh.Trimesh:
    """One triangle mesh from a file; scenes are flattened with their transforms applied.

    ``process=False`` keeps vertices, faces and colours exactly as stored: repair decides
    what to weld, so the report can say what it changed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnrepairableMesh(
            f"unsupported mesh format {suffix!r}; use one of {sorted(SUPPORTED_SUFFIXES)}",
            path=str(path),
        )
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise UnrepairableMesh(f"cannot read {path.name}: {exc}", path=str(path)) from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise UnrepairableMesh(f"{path.name} contains no triangles", path=str(path))
    return loaded
