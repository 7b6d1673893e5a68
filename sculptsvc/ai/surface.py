"""Marching cubes shared by the AI reconstructors: a closed, outward-wound isosurface.

scikit-image's ``marching_cubes`` (Lewiner) on a volume padded with one layer far on the
"outside" side of the level, so the surface is closed (watertight) even where the object
touches the box; winding is fixed by the sign of the enclosed volume.
"""

from __future__ import annotations

import numpy as np
from skimage import measure

from sculptsvc.errors import ModelOutputInvalid

PAD_DEPTH = 1e9
"""How far below the level the padding layer lies (float64 volume)."""


def marching_cubes(
    density: np.ndarray, threshold: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed isosurface ``density == threshold`` of a grid over [-radius, radius]^3.

    Returns vertices (n, 3) float64 and faces (m, 3) int64 wound so normals face outward
    (towards lower density). Raises ``ModelOutputInvalid`` when there is no surface.
    """
    if not np.isfinite(density).all():
        raise ModelOutputInvalid("the density grid has NaN values")
    inside = density > threshold
    if not inside.any():
        raise ModelOutputInvalid(f"no density above the threshold {threshold}: empty object")
    # Only cubes with an inside corner can hold surface: march the inside's bounding box
    # plus one voxel (objects rarely fill the box; at 256^3 this is most of the cost).
    lo, hi = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(inside.any(axis=others))
        lo.append(max(int(hit[0]) - 1, 0))
        hi.append(min(int(hit[-1]) + 2, density.shape[axis]))
    block = density[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    # Far below the threshold, so where the object meets the box the closing cap sits on
    # the box face (within ~1e-6 voxel) instead of bulging a voxel beyond it.
    outside_value = min(float(block.min()), threshold) - PAD_DEPTH
    padded = np.pad(block.astype(np.float64), 1, constant_values=outside_value)
    step = 2.0 * radius / (density.shape[0] - 1)
    verts, faces, _, _ = measure.marching_cubes(
        padded,
        level=threshold,
        spacing=(step, step, step),
        gradient_direction="descent",
        allow_degenerate=False,
    )
    verts = verts.astype(np.float64) + (np.asarray(lo, dtype=np.float64) - 1.0) * step - radius
    faces = faces.astype(np.int64)
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1].copy()
    return verts, faces


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
