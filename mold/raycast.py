"""Vectorised vertical ray casting: does a ray from a point straight up (or down) hit the part?

One ray per face, per candidate pull direction, is the undercut test. manifold3d's
``Manifold.ray_cast`` answers one ray per Python call (~10 us each); with 20k faces and half a
dozen directions that alone would blow the mold's time budget. Here the rays are binned into
a uniform xy grid and every triangle is tested only against the rays in the cells its
bounding box covers, all in numpy: the same answer, a few milliseconds per direction.

When there are far fewer rays than triangles (a few thousand ranking rays on a
million-triangle scan), most triangles hold no ray in their box: a summed-area table of the
rays over a grid sized by the triangles finds them in four lookups each, and they are
dropped before any pair is formed. The answer does not change (a ray can only hit a
triangle whose box holds it).
"""

from __future__ import annotations

import numpy as np

_INTERIOR_EPS = 1e-9  # barycentric slack: a ray through a shared edge is not a hit
_MIN_PROJECTED_AREA = 1e-14  # relative; vertical triangles cannot stop a vertical ray
_MAX_GRID = 1024
_GRID_PER_SQRT_RAYS = 1.0  # cells per axis per sqrt(rays)
_FILTER_GRID_PER_SQRT_TRIS = 1.0  # cells per axis per sqrt(triangles): about one per cell
_FILTER_TRIS_PER_RAY = 8  # below this many triangles per ray most boxes hold a ray anyway


def vertical_hits(tris: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each origin, whether the ray towards +z and the ray towards -z hit a triangle.

    tris: ``(m, 3, 3)`` float, in a frame where the pull direction is +z.
    origins: ``(k, 3)`` float ray starts (already offset off the surface by the caller).
    Returns ``(hit_up (k,) bool, hit_down (k,) bool)``. Hits exactly at the origin's height
    count for neither direction.
    """
    k = len(origins)
    hit_up = np.zeros(k, dtype=bool)
    hit_down = np.zeros(k, dtype=bool)
    if k == 0 or len(tris) == 0:
        return hit_up, hit_down

    # small-axis reductions are slow in numpy: take corner-wise minima/maxima instead
    tmin = np.minimum(np.minimum(tris[:, 0, :2], tris[:, 1, :2]), tris[:, 2, :2])
    tmax = np.maximum(np.maximum(tris[:, 0, :2], tris[:, 1, :2]), tris[:, 2, :2])
    scale = float((tmax.max(axis=0) - tmin.min(axis=0)).max()) or 1.0
    # only triangles whose box may hold a ray are set up at all (the same values as
    # setting up every triangle and dropping the others afterwards)
    if len(tris) > _FILTER_TRIS_PER_RAY * k:
        held = np.flatnonzero(_boxes_holding_a_ray(tmin, tmax, origins[:, :2]))
        tris, tmin, tmax = tris[held], tmin[held], tmax[held]
    a = tris[:, 0]
    e1 = tris[:, 1] - a
    e2 = tris[:, 2] - a
    den = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    keep = np.abs(den) > _MIN_PROJECTED_AREA * scale * scale
    if not keep.any():
        return hit_up, hit_down
    # 1-D columns of the kept triangles: fancy indexing of 1-D arrays is what is fast
    ax, ay, az = (np.ascontiguousarray(a[keep, i]) for i in range(3))
    e1x, e1y, e1z = (np.ascontiguousarray(e1[keep, i]) for i in range(3))
    e2x, e2y, e2z = (np.ascontiguousarray(e2[keep, i]) for i in range(3))
    den = den[keep]
    tmin, tmax = tmin[keep], tmax[keep]
    ox, oy, oz = origins[:, 0], origins[:, 1], origins[:, 2]
    # the grid is sized by the rays: each cell holds about one ray
    lo = origins[:, :2].min(axis=0)
    hi = origins[:, :2].max(axis=0)
    n = int(np.clip(_GRID_PER_SQRT_RAYS * np.sqrt(k), 1, _MAX_GRID))
    cell = np.maximum((hi - lo) / n, 1e-12)

    def cell_of(p: np.ndarray) -> np.ndarray:
        return np.clip(np.floor((p - lo) / cell).astype(np.int64), 0, n - 1)

    # rays sorted by cell (CSR)
    pc = cell_of(origins[:, :2])
    ray_cell = pc[:, 0] * n + pc[:, 1]
    ray_order = np.argsort(ray_cell, kind="stable")
    ray_starts = np.searchsorted(ray_cell[ray_order], np.arange(n * n + 1))

    # triangles that can cover a ray at all, then every (triangle, cell) they overlap
    overlaps = (tmax[:, 0] >= lo[0]) & (tmax[:, 1] >= lo[1])
    overlaps &= (tmin[:, 0] <= hi[0]) & (tmin[:, 1] <= hi[1])
    tri_ids = np.flatnonzero(overlaps)
    c0 = cell_of(tmin[tri_ids])
    c1 = cell_of(tmax[tri_ids])
    span = c1 - c0 + 1
    counts = span[:, 0] * span[:, 1]
    owner = np.repeat(np.arange(len(tri_ids)), counts)
    local = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    sx = span[owner, 0]
    entry_cell = (c0[owner, 0] + local % sx) * n + (c0[owner, 1] + local // sx)

    # every (ray, triangle) pair sharing a cell
    first = ray_starts[entry_cell]
    cnt = ray_starts[entry_cell + 1] - first
    entry = np.repeat(np.arange(len(entry_cell)), cnt)
    if len(entry) == 0:
        return hit_up, hit_down
    offs = np.arange(len(entry)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ray = ray_order[first[entry] + offs]
    t = tri_ids[owner[entry]]

    rx = ox[ray] - ax[t]
    ry = oy[ray] - ay[t]
    d = den[t]
    u = (rx * e2y[t] - e2x[t] * ry) / d
    v = (e1x[t] * ry - rx * e1y[t]) / d
    inside = (u > _INTERIOR_EPS) & (v > _INTERIOR_EPS) & (u + v < 1.0 - _INTERIOR_EPS)
    ray, t, u, v = ray[inside], t[inside], u[inside], v[inside]
    z = az[t] + u * e1z[t] + v * e2z[t]
    above = z > oz[ray]
    hit_up[ray[above]] = True
    hit_down[ray[~above & (z < oz[ray])]] = True
    return hit_up, hit_down


def _boxes_holding_a_ray(tmin: np.ndarray, tmax: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per triangle, whether its xy box ``[tmin, tmax]`` may hold one of ``points``.

    Conservative: cells come from ``floor``, which is monotonic, so a point inside a box
    lies in a cell of the box's cell range; a ``False`` is certain, a ``True`` is tested
    exactly later.
    """
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    n = int(np.clip(_FILTER_GRID_PER_SQRT_TRIS * np.sqrt(len(tmin)), 1, _MAX_GRID))
    cell = np.maximum((hi - lo) / n, 1e-12)

    def cell_of(p: np.ndarray) -> np.ndarray:
        return np.clip(np.floor((p - lo) / cell).astype(np.int64), 0, n - 1)

    pc = cell_of(points)
    rays = np.bincount(pc[:, 0] * n + pc[:, 1], minlength=n * n).reshape(n, n)
    table = np.zeros((n + 1, n + 1), dtype=np.int64)  # table[i, j]: rays in cells < (i, j)
    table[1:, 1:] = rays.cumsum(axis=0).cumsum(axis=1)
    c0 = cell_of(tmin)
    c1 = cell_of(tmax) + 1
    inside = (
        table[c1[:, 0], c1[:, 1]]
        - table[c0[:, 0], c1[:, 1]]
        - table[c1[:, 0], c0[:, 1]]
        + table[c0[:, 0], c0[:, 1]]
    )
    return inside > 0
