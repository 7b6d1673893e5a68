"""Voxel remesh: the robust fallback that turns any triangle soup into a closed surface.

The soup's surface is rasterised into voxels and thickened by ``closing`` voxels so cracks
and small holes seal; everything the outside cannot reach by flood fill is solid. The
Euclidean distance inside that solid, cut at ``closing`` voxels (a morphological closing
with a round ball), gives a smooth field whose iso-surface (marching cubes) is watertight by
construction. Features thinner than about one voxel are lost, which is why this only runs
when direct repair fails; the report's Hausdorff distance tells how far it moved.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import trimesh
from scipy import ndimage
from skimage import measure

from sculptsvc.errors import UnrepairableMesh

_PAD_VOXELS = 3
_LEVEL_NUDGE = 1e-3  # voxels; see voxel_remesh


_POINTS_PER_CHUNK = 2_000_000  # sample points held at once while marking voxels


def _barycentric_grid(n: int) -> np.ndarray:
    """(p, 3) weights of the regular grid with ``n`` steps a side on a triangle."""
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = (i + j) <= n
    a = (i[ok] / n)[:, None]
    b = (j[ok] / n)[:, None]
    return np.hstack([1.0 - a - b, a, b])


def surface_point_chunks(mesh: trimesh.Trimesh, spacing: float) -> Iterator[np.ndarray]:
    """(k, 3) points on every triangle, no two neighbours further apart than ``spacing``,
    a few million at a time.

    A regular barycentric grid per triangle (deterministic, unlike random sampling), with
    the grid density chosen per triangle from its longest edge. A CAD plate's long
    triangles take tens of millions of points (63 M for a 650 mm printer bed at 160
    voxels): held at once they were 1.5-3 GB and most of the rebuild's time.
    """
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    edges = np.linalg.norm(tri[:, [1, 2, 0]] - tri, axis=2).max(axis=1)
    steps = np.maximum(np.ceil(edges / spacing).astype(np.int64), 1)
    yield tri.reshape(-1, 3)
    for n in np.unique(steps):
        if n <= 1:
            continue
        sel = tri[steps == n]
        weights = _barycentric_grid(int(n))
        per_chunk = max(1, _POINTS_PER_CHUNK // len(weights))
        for start in range(0, len(sel), per_chunk):
            part = sel[start : start + per_chunk]
            yield np.einsum("pk,tkd->tpd", weights, part).reshape(-1, 3)


def voxel_remesh(mesh: trimesh.Trimesh, resolution: int, closing: int) -> trimesh.Trimesh:
    """Closed, outward-oriented surface of the solid bounded by ``mesh`` (any soup).

    resolution: voxels along the longest bounding-box side; closing: seal radius, voxels.
    Raises ``UnrepairableMesh`` when nothing is enclosed (an open sheet).
    """
    lo = mesh.bounds[0]
    size = float(np.ptp(mesh.bounds, axis=0).max())
    pitch = size / resolution
    pad = closing + _PAD_VOXELS
    origin = lo - pad * pitch
    shape = np.ceil(np.ptp(mesh.bounds, axis=0) / pitch).astype(np.int64) + 2 * pad + 1

    surface = np.zeros(tuple(shape), dtype=bool)
    for points in surface_point_chunks(mesh, pitch * 0.5):
        cells = np.floor((points - origin) / pitch + 0.5).astype(np.int64)
        cells = np.clip(cells, 0, shape - 1)
        surface[cells[:, 0], cells[:, 1], cells[:, 2]] = True

    # Thicken the surface by `closing` voxels (round ball), then flood the outside.
    thick = ndimage.distance_transform_edt(~surface) <= closing if closing else surface
    labels, _ = ndimage.label(~thick)
    border = np.unique(
        np.concatenate(
            [
                labels[[0, -1], :, :].ravel(),
                labels[:, [0, -1], :].ravel(),
                labels[:, :, [0, -1]].ravel(),
            ]
        )
    )
    outside = np.isin(labels, border[border > 0])
    solid = ~outside
    # Distance to the nearest outside voxel centre: the first outside voxel lies one voxel
    # beyond the thickened band, so the original surface sits at `closing + 1`.
    field = ndimage.distance_transform_edt(solid)
    level = closing + 1.0
    if field.max() <= level:
        raise UnrepairableMesh(
            "the surface encloses no volume: it is an open sheet, or a solid thinner than "
            f"1/{resolution} of its size everywhere, so there is nothing to cast",
            resolution=resolution,
        )
    # Distances are square roots of integers, so along flat axis-aligned walls (CAD parts,
    # buildings) whole sheets of voxels sit exactly on the level. Marching cubes then puts
    # the vertices of several cube edges on the same grid point, and the degenerate
    # triangles it drops leave holes (a rebuilt surface manifold3d refused). Those voxels
    # count as just inside: the surface moves by _LEVEL_NUDGE of a voxel there.
    field[field == level] += _LEVEL_NUDGE
    verts, faces, _, _ = measure.marching_cubes(
        field, level=level, spacing=(pitch, pitch, pitch), allow_degenerate=False
    )
    result = trimesh.Trimesh(verts + origin, faces, process=True)
    if result.volume < 0:
        result.invert()
    return result
