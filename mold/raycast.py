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
_CELL_SLACK = 1e-9  # relative to the part: how far a triangle's cells reach past its edges
_MIN_PROJECTED_AREA = 1e-14  # relative; vertical triangles cannot stop a vertical ray
_MAX_GRID = 1024
_BOX_CELLS = 4  # a triangle whose box spans more cells is followed row by row
_REFINE_PAIRS_PER_ENTRY = 8  # a grid with fewer (ray, triangle) pairs per entry is kept
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
    lo = origins[:, :2].min(axis=0)
    hi = origins[:, :2].max(axis=0)
    # triangles that can cover a ray at all
    overlaps = (tmax[:, 0] >= lo[0]) & (tmax[:, 1] >= lo[1])
    overlaps &= (tmin[:, 0] <= hi[0]) & (tmin[:, 1] <= hi[1])
    tri_ids = np.flatnonzero(overlaps)
    corners = tris[np.flatnonzero(keep)[tri_ids], :, :2]
    # The grid starts at about one ray per cell. Rays bunched in a few cells (a refined
    # plate: its faces, hence its rays, crowd around its holes) pair with every small face
    # there: 47 million pairs for 19k rays. Finer grids are tried while the work they set
    # up, (triangle, cell) entries plus (ray, triangle) pairs, shrinks; any grid gives the
    # same hits.
    n = int(np.clip(_GRID_PER_SQRT_RAYS * np.sqrt(k), 1, _MAX_GRID))
    best: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    while True:
        cell = np.maximum((hi - lo) / n, 1e-12)
        pc = np.clip(np.floor((origins[:, :2] - lo) / cell).astype(np.int64), 0, n - 1)
        ray_cell = pc[:, 0] * n + pc[:, 1]
        owner, entry_cell = _covered_cells(corners, lo, cell, n, _CELL_SLACK * scale)
        rays_in = np.bincount(ray_cell, minlength=n * n)
        pairs = int(rays_in[entry_cell].sum())
        work = len(entry_cell) + pairs
        if best is not None and work >= best[0]:
            break
        best = (work, n, ray_cell, rays_in, owner, entry_cell)
        if n >= _MAX_GRID or pairs <= _REFINE_PAIRS_PER_ENTRY * len(entry_cell):
            break
        n = min(2 * n, _MAX_GRID)
    _, n, ray_cell, rays_in, owner, entry_cell = best
    # rays sorted by cell (CSR)
    ray_order = np.argsort(ray_cell, kind="stable")
    ray_starts = np.zeros(n * n + 1, dtype=np.int64)
    np.cumsum(rays_in, out=ray_starts[1:])

    # every (ray, triangle) pair sharing a cell
    first = ray_starts[entry_cell]
    cnt = ray_starts[entry_cell + 1] - first
    entry, offs = _runs(cnt)
    if len(entry) == 0:
        return hit_up, hit_down
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


def _covered_cells(
    corners: np.ndarray,
    lo: np.ndarray,
    cell: np.ndarray,
    n: int,
    slack: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (triangle, grid cell) that a triangle's xy projection may cover.

    ``corners``: ``(m, 3, 2)``; returns ``(triangle index, flat cell x * n + y)``.
    Conservative, so the hits do not change. A triangle whose bounding box spans at most
    ``_BOX_CELLS`` cells takes them all; a larger one, per cell row of its box, only the
    columns between where the row's band meets its edges (the extreme x of a triangle cut
    by a band lie on its edges), widened by ``slack``: the long slivers of a refined plate
    (a printer bed) cover a few of the hundreds of cells their boxes span.
    """

    def cell_of(v: np.ndarray, axis: int) -> np.ndarray:
        return np.clip(np.floor((v - lo[axis]) / cell[axis]).astype(np.int64), 0, n - 1)

    tmin, tmax = corners.min(axis=1), corners.max(axis=1)
    c0 = np.stack([cell_of(tmin[:, 0], 0), cell_of(tmin[:, 1], 1)], axis=1)
    c1 = np.stack([cell_of(tmax[:, 0], 0), cell_of(tmax[:, 1], 1)], axis=1)
    span = c1 - c0 + 1
    boxed = span[:, 0] * span[:, 1] <= _BOX_CELLS
    small = np.flatnonzero(boxed)
    counts = span[small, 0] * span[small, 1]
    run, local = _runs(counts)
    owner = small[run]
    sx = span[owner, 0]
    box_cell = (c0[owner, 0] + local % sx) * n + (c0[owner, 1] + local // sx)

    large = np.flatnonzero(~boxed)
    big = corners[large]
    first_row = cell_of(big[:, :, 1].min(axis=1) - slack, 1)
    last_row = cell_of(big[:, :, 1].max(axis=1) + slack, 1)
    rows = last_row - first_row + 1
    tri, row_in_box = _runs(rows)
    row = first_row[tri] + row_in_box
    # the row's band, widened by the slack (a ray on a band edge may floor to either row);
    # the first and last rows reach the rays clipped into them
    lo_y = float(lo[1])
    band_lo = np.where(row == 0, -np.inf, lo_y + row * cell[1] - slack)
    band_hi = np.where(row == n - 1, np.inf, lo_y + (row + 1) * cell[1] + slack)
    x_min = np.full(len(tri), np.inf)
    x_max = np.full(len(tri), -np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        px, py = big[tri, i, 0], big[tri, i, 1]
        qx, qy = big[tri, j, 0], big[tri, j, 1]
        dy = qy - py
        flat = dy == 0
        safe = np.where(flat, 1.0, dy)
        t_lo = (band_lo - py) / safe
        t_hi = (band_hi - py) / safe
        t0 = np.clip(np.minimum(t_lo, t_hi), 0.0, 1.0)
        t1 = np.clip(np.maximum(t_lo, t_hi), 0.0, 1.0)
        in_band = (py >= band_lo) & (py <= band_hi)
        meets = np.where(flat, in_band, t0 <= t1)
        t0 = np.where(flat, 0.0, t0)
        t1 = np.where(flat, 1.0, t1)
        xa = px + t0 * (qx - px)
        xb = px + t1 * (qx - px)
        x_min = np.where(meets, np.minimum(x_min, np.minimum(xa, xb)), x_min)
        x_max = np.where(meets, np.maximum(x_max, np.maximum(xa, xb)), x_max)
    met = x_min <= x_max
    first_col = cell_of(np.where(met, x_min, lo[0]) - slack, 0)
    last_col = np.where(met, cell_of(np.where(met, x_max, lo[0]) + slack, 0), first_col - 1)
    cols = last_col - first_col + 1
    pair, col_in_span = _runs(cols)
    col = first_col[pair] + col_in_span
    return (
        np.concatenate([owner, large[tri[pair]]]),
        np.concatenate([box_cell, col * n + row[pair]]),
    )


def _runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``i`` repeated ``counts[i]`` times, and each element's place within its run."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


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
