"""Mesh stage: repair, smooth, ~20k triangles, UV texture, silicone GLB, preview.

    from sculptsvc.mesh import MeshParams, process_mesh, export_glb, render_preview
    result = process_mesh(mesh, MeshParams(target_faces=20_000), color_source=None)
    glb = export_glb(result, mode="multicolor")          # or "solid", color_hex="#RRGGBB"
    png = render_preview(result, mode="solid", color_hex="#D04040", size=512)

``mesh`` is a ``trimesh.Trimesh`` (vertex colours or a texture are used for baking) or a
reconstructor's ``ColoredMesh``. ``result.mesh`` is watertight and outward-oriented.
"""

from sculptsvc.mesh.io import load_mesh
from sculptsvc.mesh.params import MeshParams
from sculptsvc.mesh.pipeline import Mode, ProcessedMesh, export_glb, process_mesh
from sculptsvc.mesh.preview import render_preview
from sculptsvc.mesh.report import MeshReport

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
