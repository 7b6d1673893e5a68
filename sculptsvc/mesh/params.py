"""Every tunable of the mesh stage, named once, with the defaults the factory signed off on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mold.spec import SIZE_MM_DEFAULT, SIZE_MM_MAX, SIZE_MM_MIN


class MeshParams(BaseModel):
    """Knobs of :func:`sculptsvc.mesh.process_mesh` and the exporters.

    Lengths given as ``*_rel`` are fractions of the input's bounding-box diagonal, so one
    set of defaults serves a 0.2-unit scan and an 80 mm sculpture alike.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- Input limits ----------------------------------------------------------------
    max_input_faces: int = Field(
        3_000_000, ge=1, description="Larger inputs are rejected before any work is done."
    )

    recentre_beyond_diagonals: float = Field(
        16.0,
        gt=0,
        description="An input whose box centre lies more than this many diagonals from the "
        "origin (a scan in map or world coordinates) is first moved to the origin, and stays "
        "there: float32 positions (MeshLab's and the GLB's) keep about 7 digits, so beyond 16 "
        "diagonals they lose more than 1e-6 of the part's size.",
    )

    # --- Repair ----------------------------------------------------------------------
    weld_tolerance_rel: float = Field(
        1e-7, ge=0, description="Vertices closer than this (x diagonal) are welded."
    )
    debris_volume_ratio: float = Field(
        0.002,
        ge=0,
        lt=1,
        description="Shells with less volume than this fraction of the largest are debris.",
    )
    debris_area_ratio: float = Field(
        0.002,
        ge=0,
        lt=1,
        description="Open shells with less area than this fraction of the largest are debris.",
    )
    max_hole_edges: int = Field(
        100_000, ge=3, description="Holes bounded by more edges than this are not filled."
    )
    max_parts: int = Field(
        1,
        ge=1,
        description="Disjoint solids allowed after union; more means the order is rejected.",
    )
    fuse_gap_mm: float = Field(
        0.5,
        ge=0,
        le=5,
        description="Solids that stay apart after the union but are all joined through gaps "
        "narrower than this (mm, at the size the mold casts) are one piece: the voxel rebuild "
        "fuses them. A one-pour mold fills no cavity its sprue does not reach, and mold "
        "material that thin between two parts tears. 0: never fused.",
    )
    fuse_max_parts: int = Field(
        32,
        ge=2,
        description="At most this many solids are measured for fusing (every pair's gap).",
    )
    remesh_fallback: bool = Field(
        True, description="Rebuild the surface from a voxel field when direct repair fails."
    )
    remesh_resolution: int = Field(
        160, ge=32, le=512, description="Voxels along the longest side in the fallback remesh."
    )
    remesh_retry_resolution: int = Field(
        224,
        ge=0,
        le=512,
        description="When the rebuilt surface still fails the mold's intersection check, it "
        "is rebuilt once more from this finer field (0 or at most remesh_resolution: no retry).",
    )
    remesh_closing_voxels: int = Field(
        2, ge=0, le=8, description="Cracks up to about twice this many voxels are sealed."
    )
    coarsen_above_faces: int = Field(
        400_000,
        ge=1,
        description="Inputs with more triangles are first coarsened by vertex clustering "
        "(fast, O(n)) to about coarsen_to_faces, before repair and quadric decimation.",
    )
    coarsen_to_faces: int = Field(
        60_000, ge=1000, description="Triangles the coarsening aims at (~3-4x the output)."
    )
    mold_size_mm: float | None = Field(
        SIZE_MM_DEFAULT,
        ge=SIZE_MM_MIN,
        le=SIZE_MM_MAX,
        description="Longest side the mold scales the part to (its default, as `sculpt mold` "
        "uses); None: the mold keeps the part's size (the pipeline, already in mm). The "
        "hand-off check counts self-intersections at that scale.",
    )
    crossing_repair_rounds: int = Field(
        3,
        ge=0,
        le=10,
        description="Rounds of local re-triangulation around faces the mold's check refuses, "
        "before the voxel rebuild.",
    )
    crossing_repair_max_faces: int = Field(
        1000,
        ge=0,
        description="A surface with more crossing faces than this passes through itself "
        "(overlapping plates of an assembly, shells inside shells): the local repairs and the "
        "unsmoothed refinement cannot clear that, so the voxel rebuild comes at once. On the "
        "public test models local repairs cleared 3 to 102 crossing faces and never more; a "
        "printer platform with 11,060 spent 34 s in them before its rebuild.",
    )
    crossing_repair_rings: int = Field(
        1, ge=0, le=8, description="Rings of neighbours removed with each refused face."
    )
    crossing_repair_max_deviation_rel: float = Field(
        0.005,
        ge=0,
        description="A local re-triangulation that moves the surface further than this "
        "(x diagonal) is discarded for the voxel rebuild.",
    )
    min_volume_ratio: float = Field(
        1e-4,
        gt=0,
        description="A solid with less volume than this x bounding-box volume is rejected.",
    )

    # --- Smoothing -------------------------------------------------------------------
    smooth_steps: int = Field(
        8, ge=0, description="Taubin lambda|mu iterations (0 switches smoothing off)."
    )
    smooth_lambda: float = Field(0.5, gt=0, lt=1, description="Taubin shrink step.")
    smooth_mu: float = Field(-0.53, lt=0, gt=-1, description="Taubin inflate step.")
    max_smooth_deviation_rel: float = Field(
        0.002, ge=0, description="No vertex moves further than this (x diagonal) when smoothing."
    )

    # --- Face budget -----------------------------------------------------------------
    target_faces: int = Field(20_000, ge=100, description="Triangles of the output.")
    face_tolerance: float = Field(
        0.02, ge=0, lt=0.5, description="Accepted relative deviation from target_faces."
    )
    thin_wall_budget_factor: float = Field(
        8.0,
        ge=1.0,
        description="When every surface at the budget crosses itself at the mold's check "
        "(walls thinner than the budget's triangles: a ribbed plate), up to this many times "
        "target_faces are kept instead of refusing the part; 1 turns this off.",
    )
    decimator: Literal["fqmr", "pymeshlab"] = Field(
        "fqmr",
        description="fqmr: fast-simplification's quadric collapse (~10x faster); pymeshlab: "
        "MeshLab's (rounder triangles, slower; also the fallback when fqmr misses the budget "
        "or opens the surface).",
    )
    decimation_min_quality: float = Field(
        0.005,
        ge=0,
        lt=1,
        description="An fqmr result with a triangle rounder than this is refused (MeshLab "
        "decimates instead); quality = 4*sqrt(3)*area / sum of squared edges, 1 = equilateral, "
        "0 = degenerate.",
    )
    decimation_quality: float = Field(
        0.3, ge=0, le=1, description="pymeshlab qualitythr: how hard to avoid thin triangles."
    )
    decimation_preserve_normals: bool = Field(
        True, description="Refuse collapses that flip a face (cleaner, ~25% slower)."
    )
    subdivision: Literal["midpoint", "loop"] = Field(
        "midpoint",
        description="Refinement below target: midpoint keeps the shape, loop also rounds it.",
    )
    isotropic_iterations: int = Field(
        5,
        ge=0,
        description="Passes of MeshLab's isotropic remeshing, the repair tried before the voxel "
        "rebuild when a refined surface crosses itself (0: not tried).",
    )
    isotropic_feature_deg: float = Field(
        30.0,
        gt=0,
        lt=180,
        description="Isotropic remeshing keeps edges whose faces bend more than this (a "
        "cone's rim, a box's edges) where they are.",
    )
    isotropic_max_deviation_rel: float = Field(
        0.005,
        gt=0,
        description="An isotropic remesh farther than this (x diagonal) from the repaired "
        "surface, either way, is not used: an edge length above a plate's thickness collapses "
        "its rims (the voxel rebuild it would spare deviates about 0.7 %).",
    )
    isotropic_max_faces_factor: float = Field(
        4.0,
        ge=0,
        description="Isotropic remeshing is tried only on a repaired surface of at most this x "
        "target_faces triangles (larger ones take the voxel rebuild, which is faster there).",
    )

    # --- UV atlas and texture --------------------------------------------------------
    uv_method: Literal["projection", "xatlas"] = Field(
        "projection",
        description="projection: axis-projected charts packed by xatlas (fast); xatlas: "
        "xatlas charts too (fewer seams, seconds slower).",
    )
    texture_size: int = Field(1024, ge=64, le=8192, description="Square texture, pixels.")
    texture_padding: int = Field(2, ge=0, le=16, description="Texels between UV charts.")
    atlas_fill: float = Field(
        0.6, gt=0.1, le=1, description="Expected packed fraction, to size the first packing."
    )
    uv_overlap_passes: int = Field(
        3, ge=0, description="Rounds of splitting charts whose projection folds over itself."
    )
    uv_max_charts: int = Field(
        4096,
        ge=1,
        description="When splitting folds makes more charts than this (a screw thread folds "
        "on most faces), xatlas charts the surface itself instead (seconds slower).",
    )
    color_neighbors: int = Field(
        4, ge=1, le=32, description="Source points blended per texel (inverse distance)."
    )
    texture_samples_per_face: int = Field(
        4, ge=1, description="Surface samples per source face to read an input texture."
    )
    default_color_hex: str = Field(
        "#C8B7A6",
        pattern=r"^#[0-9A-Fa-f]{6}$",
        description="Colour when an order gives none and the mesh carries none.",
    )

    # --- Material (silicone) ---------------------------------------------------------
    roughness: float = Field(0.38, ge=0, le=1, description="Base roughness under the coat.")
    clearcoat: float = Field(1.0, ge=0, le=1, description="KHR_materials_clearcoat factor.")
    clearcoat_roughness: float = Field(0.06, ge=0, le=1, description="Clear-coat roughness.")
    ior: float = Field(1.41, ge=1, description="KHR_materials_ior (PDMS silicone ~1.40-1.43).")

    # --- Report ----------------------------------------------------------------------
    hausdorff_samples: int = Field(
        20_000, ge=100, description="Surface samples per direction for the Hausdorff check."
    )
