"""The validation report of the mesh stage: what the factory and QA check before casting."""

from __future__ import annotations

import numpy as np
import pymeshlab
import trimesh
from pydantic import BaseModel, ConfigDict, Field

from mold.geometry import without_non_finite
from sculptsvc.mesh.repair import (
    RepairLog,
    diagonal,
    edge_counts,
    signed_volume,
    split_shells,
)

Vec3 = tuple[float, float, float]


class MeshReport(BaseModel):
    """Geometry facts of the output mesh, and how far it is from what came in.

    Lengths and volumes are in the input's units (millimetres in the pipeline).
    """

    model_config = ConfigDict(frozen=True)

    triangles: int
    vertices: int
    watertight: bool = Field(description="Every edge is shared by exactly two triangles.")
    winding_consistent: bool = Field(description="Each shared edge is used once each way.")
    outward: bool = Field(description="Signed volume is positive (normals point out).")
    shells: int
    genus: int
    euler_number: int
    volume: float
    area: float
    bbox_min: Vec3
    bbox_max: Vec3
    extents: Vec3
    self_intersecting_faces: int = Field(
        description="Triangles crossing another triangle, counted by the mold's own check on the "
        "float32 positions the GLB stores, at the mold's scale (always 0: the stage repairs)."
    )
    hausdorff_rel: float = Field(
        description="Symmetric Hausdorff distance to the input / input bounding-box diagonal."
    )
    hausdorff_out_to_in_rel: float = Field(
        description="Farthest output point from the input surface (invented geometry)."
    )
    hausdorff_in_to_out_rel: float = Field(
        description="Farthest input point from the output (dropped debris, removed inner parts)."
    )
    mean_deviation_rel: float = Field(description="Mean output-to-input distance / diagonal.")
    input_triangles: int
    input_vertices: int
    input_shells: int
    input_boundary_edges: int
    input_non_manifold_edges: int
    repair_method: str = Field(description="none | direct | remesh")
    repair_actions: list[str]
    smooth_max_displacement_rel: float
    face_budget: str = Field(
        description="kept | decimated | subdivided (...) | remeshed (isotropic)"
    )
    color_source: str = Field(
        description="callable | vertex | face | texture | material | none; a file of differently "
        "coloured parts: their kinds joined by '+' (texture+vertex)"
    )


def hausdorff(
    output: trimesh.Trimesh, source: trimesh.Trimesh, samples: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(max, mean) distance output -> source surface, and (max, mean) source -> output.

    Both meshes go into one MeshSet (converting the large input once, not twice). Only
    vertices are sampled: pymeshlab's edge/face sampling draws from a process-wide random
    generator, so the report would differ between a CLI run and a long-lived worker. The
    ``samples`` cap keeps a large input's vertex sampling bounded (every k-th vertex).
    """
    # the source as repair saw it: faces with a NaN or infinite corner gone (MeshLab aborts
    # the process on them)
    source_vertices, source_faces, _ = without_non_finite(
        np.asarray(source.vertices, dtype=np.float64), np.asarray(source.faces)
    )
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(source_vertices, source_faces))
    ms.add_mesh(pymeshlab.Mesh(np.asarray(output.vertices), np.asarray(output.faces)))
    vertex_only = {
        "samplevert": True,
        "sampleedge": False,
        "samplefauxedge": False,
        "sampleface": False,
    }
    out_in = ms.get_hausdorff_distance(
        sampledmesh=1, targetmesh=0, samplenum=max(samples, len(output.vertices)), **vertex_only
    )
    in_out = ms.get_hausdorff_distance(
        sampledmesh=0, targetmesh=1, samplenum=max(samples, len(source_vertices)), **vertex_only
    )
    return (
        (float(out_in["max"]), float(out_in["mean"])),
        (float(in_out["max"]), float(in_out["mean"])),
    )


def measure(
    mesh: trimesh.Trimesh,
    source: trimesh.Trimesh,
    repair_log: RepairLog,
    *,
    smooth_displacement: float,
    face_budget: str,
    color_source: str,
    hausdorff_samples: int,
    self_intersecting_faces: int,
    edges: tuple[int, int, int] | None = None,
    volume: float | None = None,
) -> MeshReport:
    """The report of ``mesh`` against its ``source``.

    ``self_intersecting_faces`` comes from the pipeline, which already ran pymeshlab's
    exact test on this very mesh: counting again would double the stage's costliest check.
    ``edges`` (``edge_counts``) and ``volume`` (``signed_volume``) likewise, when the caller
    already measured them on ``mesh``.
    """
    faces = np.asarray(mesh.faces)
    boundary, nonmanifold, repeated = edges if edges is not None else edge_counts(faces)
    shells = len(split_shells(mesh))
    euler = int(mesh.euler_number)
    # sizes relative to the surface the file describes: finite vertices that faces use
    # (a stray unused vertex far away would shrink every relative figure)
    used_vertices, used_faces, _ = without_non_finite(
        np.asarray(source.vertices, dtype=np.float64), np.asarray(source.faces)
    )
    diag = diagonal(used_vertices[np.unique(used_faces)])
    (out_in, mean), (in_out, _) = hausdorff(mesh, source, hausdorff_samples)
    if volume is None:
        volume = signed_volume(mesh.vertices, faces)
    lo, hi = mesh.bounds
    return MeshReport(
        triangles=len(faces),
        vertices=len(mesh.vertices),
        watertight=boundary == 0 and nonmanifold == 0,
        winding_consistent=repeated == 0,
        outward=volume > 0,
        shells=shells,
        genus=(2 * shells - euler) // 2,
        euler_number=euler,
        volume=volume,
        self_intersecting_faces=self_intersecting_faces,
        area=float(mesh.area),
        bbox_min=(float(lo[0]), float(lo[1]), float(lo[2])),
        bbox_max=(float(hi[0]), float(hi[1]), float(hi[2])),
        extents=(float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2] - lo[2])),
        hausdorff_rel=max(out_in, in_out) / diag,
        hausdorff_out_to_in_rel=out_in / diag,
        hausdorff_in_to_out_rel=in_out / diag,
        mean_deviation_rel=mean / diag,
        input_triangles=len(source.faces),
        input_vertices=len(source.vertices),
        input_shells=repair_log.shells_in,
        input_boundary_edges=repair_log.boundary_edges_in,
        input_non_manifold_edges=repair_log.non_manifold_edges_in,
        repair_method=repair_log.method,
        repair_actions=list(repair_log.actions),
        smooth_max_displacement_rel=smooth_displacement / diag,
        face_budget=face_budget,
        color_source=color_source,
    )
