"""Mesh stage: repair, smooth, ~20k triangles, UV texture, silicone GLB, preview.

    from sculptsvc.mesh import MeshParams, process_mesh, export_glb, render_preview
    result = process_mesh(mesh, MeshParams(target_faces=20_000), color_source=None)
    glb = export_glb(result, mode="multicolor")          # or "solid", color_hex="#RRGGBB"
    png = render_preview(result, mode="solid", color_hex="#D04040", size=512)

``mesh`` is a ``trimesh.Trimesh`` (vertex colours or a texture are used for baking) or a
reconstructor's ``ColoredMesh``. ``result.mesh`` is watertight and outward-oriented.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sculptsvc.mesh.io import load_mesh
    from sculptsvc.mesh.params import MeshParams
    from sculptsvc.mesh.pipeline import Mode, ProcessedMesh, export_glb, process_mesh
    from sculptsvc.mesh.preview import render_preview
    from sculptsvc.mesh.report import MeshReport

# Names resolve on first use: ``sculpt mold`` reads a file with ``load_mesh`` and should not
# pay for pymeshlab, the UV and GLB code and the renderer (about 0.7 s per process).
_EXPORTS = {
    "load_mesh": "sculptsvc.mesh.io",
    "MeshParams": "sculptsvc.mesh.params",
    "Mode": "sculptsvc.mesh.pipeline",
    "ProcessedMesh": "sculptsvc.mesh.pipeline",
    "export_glb": "sculptsvc.mesh.pipeline",
    "process_mesh": "sculptsvc.mesh.pipeline",
    "render_preview": "sculptsvc.mesh.preview",
    "MeshReport": "sculptsvc.mesh.report",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "MeshParams",
    "MeshReport",
    "Mode",
    "ProcessedMesh",
    "export_glb",
    "load_mesh",
    "process_mesh",
    "render_preview",
]
