"""UV atlas and texture baking.

Unwrapping: full xatlas charting costs 2-8 s for 20k triangles on this hardware, more than
the whole stage's budget. The default ``projection`` method segments the surface the way
"smart UV project" tools do (faces grouped by the closest of six axis directions, split
into edge-connected charts, each projected orthographically, which never flips a
triangle) and lets xatlas only *pack* the charts (~0.1 s). A projection can fold over
itself inside a chart (an ear curling back: most scanned meshes do somewhere); the faces
whose projections overlap are found exactly before packing and split off, and after
packing the rasteriser still looks for texels claimed twice (those charts are split and
repacked), so the atlas is overlap-free by check, not by hope.
``uv_method="xatlas"`` keeps the full xatlas path (fewer seams, slower).

Baking: every texel centre inside a UV triangle gets its 3D point and normal by barycentric
interpolation and asks the colour source; texels outside all charts take the colour of the
nearest inside texel so bilinear filtering and mip-maps never bleed background into seams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import trimesh
import xatlas
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sculptsvc.errors import MeshProcessingFailed
from sculptsvc.logging import get_logger
from sculptsvc.mesh.colors import ConstantColorSource
from sculptsvc.mesh.params import MeshParams
from sculptsvc.reconstruct.base import ColorSource

log = get_logger(__name__)

# Projection directions (+X, +Y, +Z, -X, -Y, -Z) and the in-plane axes (e1, e2) of each,
# chosen so that e1 x e2 = direction: front-facing triangles stay counter-clockwise in UV.
_DIRECTIONS = np.vstack([np.eye(3), -np.eye(3)])
_PLANE_AXES = ((1, 2), (2, 0), (0, 1), (2, 1), (0, 2), (1, 0))
_RELABEL_PASSES = 2
_RELABEL_MIN_DOT = 0.3  # a face joins a neighbour's chart only if it still faces that way
_PACK_SHRINK = 0.9  # texel density factor when the charts do not fit in one atlas ...
_PACK_FINE_ATTEMPTS = 8  # ... for this many attempts (nearly every mesh fits in the first),
_PACK_COARSE_SHRINK = 0.75  # then in coarser steps,
_PACK_MIN_FRACTION = 1 / 64  # down to this share of the density the charts' area asks for
_UV_DIAGONAL_EXPONENT = 6  # charts are packed at a diagonal of 2**6..2**7 units
_INSIDE_EPS = 1e-6  # barycentric margin for "strictly inside" (overlap test)
_ROW_SLACK = 1e-3  # texels; far above the rasteriser's own tolerance (1e-9 x the triangle)
_FOLD_MAX_CELLS_PER_FACE = 16  # grid entries per face, on average, in the fold search
_FOLD_MIN_DEPTH_TEXELS = 1e-6  # shallower overlaps are rounding (a thin wedge at a shared
# corner 0.08 texel wide still held a texel centre; the fold counts settle below 0.01)


@dataclass(frozen=True)
class Raster:
    """Texel centres covered by UV triangles: face (k,), barycentric (k, 3), row/col (k,)."""

    face: np.ndarray
    bary: np.ndarray
    row: np.ndarray
    col: np.ndarray


@dataclass(frozen=True)
class UVAtlas:
    """A mesh split at UV seams.

    vertices: (n, 3) float; normals: (n, 3) float; uv: (n, 2) float in [0, 1] (glTF
    convention, v down); faces: (m, 3) int, same order as the source faces;
    source_vertex: (n,) int, the source vertex of each; charts: chart count.
    """

    vertices: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    faces: np.ndarray
    source_vertex: np.ndarray
    charts: int
    overlap_passes: int
    raster: Raster | None = None  # texel coverage at ``raster_size``, reused by the bake
    raster_size: int = 0


def rasterize(uv: np.ndarray, faces: np.ndarray, size: int, eps: float = 1e-9) -> Raster:
    """Every texel centre of a ``size`` x ``size`` image inside each UV triangle.

    uv: (n, 2) in [0, 1], v measured from the top (glTF); texel (r, c) has its centre at
    ((c + 0.5) / size, (r + 0.5) / size). Edge functions are set up once per triangle;
    candidates are, per texel row of each triangle's bounding box, the columns between
    where that row crosses the triangle's edges, one texel wider each side (a triangle
    fills about half its box): the exact barycentric test then decides, so the result is
    the same as testing every texel of the box. Vectorised, no Python loop over faces.
    """
    pts = np.asarray(uv, dtype=np.float64)[faces] * size - 0.5  # texel-centre coordinates
    lo = np.clip(np.ceil(pts.min(axis=1)).astype(np.int64), 0, size - 1)
    hi = np.clip(np.floor(pts.max(axis=1)).astype(np.int64), -1, size - 1)
    width = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    height = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    x0, y0 = pts[:, 0, 0], pts[:, 0, 1]
    e1 = pts[:, 1] - pts[:, 0]
    e2 = pts[:, 2] - pts[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    usable = (np.abs(det) > 1e-14) & (width * height > 0)
    inv = np.where(usable, 1.0 / np.where(usable, det, 1.0), 0.0)

    # one (face, row) pair per texel row of each usable face's box
    pair_face, row_in_box = _runs(np.where(usable, height, 0))
    pair_row = lo[pair_face, 1] + row_in_box
    first, last = _row_spans(pts[pair_face], pair_row, lo[pair_face, 0], hi[pair_face, 0])
    pair, col_in_span = _runs(np.maximum(last - first + 1, 0))
    col = first[pair] + col_in_span
    face = pair_face[pair]
    row = pair_row[pair]

    dx = col - x0[face]
    dy = row - y0[face]
    b1 = (dx * e2[face, 1] - dy * e2[face, 0]) * inv[face]
    b2 = (dy * e1[face, 0] - dx * e1[face, 1]) * inv[face]
    b0 = 1.0 - b1 - b2
    # the texels inside, found once and gathered from each array (a boolean index per
    # array scans the mask again each time: 7 scans of about a million candidates)
    inside = np.flatnonzero((b0 >= -eps) & (b1 >= -eps) & (b2 >= -eps))
    bary = np.empty((len(inside), 3))
    for k, b in enumerate((b0, b1, b2)):
        bary[:, k] = b.take(inside)
    return Raster(face=face.take(inside), bary=bary, row=row.take(inside), col=col.take(inside))


def _runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``i`` repeated ``counts[i]`` times, and each element's place within its run."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


def _row_spans(
    tri: np.ndarray, row: np.ndarray, box_first: np.ndarray, box_last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) candidate column of each (triangle (k, 3, 2), texel row (k,)) pair.

    A superset of the texels the barycentric test accepts: the row's crossings with the
    edges it meets (within ``_ROW_SLACK``, which covers the test's tolerance), one texel
    wider each side, inside the box. An edge less than a texel tall gives both its ends
    (its crossing would be ill-conditioned). A row that meets no edge (a box clipped to
    the image) gets an empty span.
    """
    y = row.astype(np.float64)
    left = np.full(len(row), np.inf)
    right = np.full(len(row), -np.inf)
    for a, b in ((0, 1), (1, 2), (2, 0)):
        xa, ya, xb, yb = tri[:, a, 0], tri[:, a, 1], tri[:, b, 0], tri[:, b, 1]
        meets = (y >= np.minimum(ya, yb) - _ROW_SLACK) & (y <= np.maximum(ya, yb) + _ROW_SLACK)
        flat = np.abs(yb - ya) < 1.0
        t = np.clip(np.where(flat, 0.0, (y - ya) / np.where(flat, 1.0, yb - ya)), 0.0, 1.0)
        x = xa + t * (xb - xa)
        left = np.where(meets, np.minimum(left, np.where(flat, np.minimum(xa, xb), x)), left)
        right = np.where(meets, np.maximum(right, np.where(flat, np.maximum(xa, xb), x)), right)
    met = left <= right
    first = np.maximum(box_first, np.ceil(np.where(met, left, 0.0)).astype(np.int64) - 1)
    last = np.minimum(box_last, np.floor(np.where(met, right, 0.0)).astype(np.int64) + 1)
    return first, np.where(met, last, first - 1)


def _projection_labels(mesh: trimesh.Trimesh) -> np.ndarray:
    """Closest axis direction per face, with lone faces joining their neighbours' chart."""
    normals = mesh.face_normals
    dots = normals @ _DIRECTIONS.T
    labels = np.argmax(dots, axis=1)
    adjacency = mesh.face_adjacency
    n_faces = len(mesh.faces)
    for _ in range(_RELABEL_PASSES):
        same = labels[adjacency[:, 0]] == labels[adjacency[:, 1]]
        support = np.zeros(n_faces, dtype=np.int64)
        np.add.at(support, adjacency[same].ravel(), 1)
        lonely = np.flatnonzero(support == 0)
        if len(lonely) == 0:
            break
        # Vote among the neighbours' labels; accept only labels the face still faces.
        votes = np.zeros((n_faces, len(_DIRECTIONS)), dtype=np.int64)
        np.add.at(votes, (adjacency[:, 0], labels[adjacency[:, 1]]), 1)
        np.add.at(votes, (adjacency[:, 1], labels[adjacency[:, 0]]), 1)
        allowed = dots[lonely] >= _RELABEL_MIN_DOT
        score = np.where(allowed, votes[lonely], -1)
        best = np.argmax(score, axis=1)
        ok = score[np.arange(len(lonely)), best] > 0
        labels[lonely[ok]] = best[ok]
    return labels


def _components(mesh: trimesh.Trimesh, labels: np.ndarray) -> np.ndarray:
    """Chart id per face: edge-connected faces with the same label (any int key)."""
    adjacency = mesh.face_adjacency
    same = adjacency[labels[adjacency[:, 0]] == labels[adjacency[:, 1]]]
    n = len(mesh.faces)
    graph = coo_matrix((np.ones(len(same)), (same[:, 0], same[:, 1])), shape=(n, n))
    _, chart = connected_components(graph, directed=False)
    return chart


def _project(mesh: trimesh.Trimesh, labels: np.ndarray) -> np.ndarray:
    """(m, 3, 2) per-corner UVs in world units, each face projected along its label."""
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    axes = np.array(_PLANE_AXES)[labels]  # (m, 2)
    rows = np.arange(len(tri))[:, None]
    u = tri[rows, np.arange(3)[None, :], axes[:, [0]]]
    v = tri[rows, np.arange(3)[None, :], axes[:, [1]]]
    return np.stack([u, v], axis=2)


def _corner_vertices(faces: np.ndarray, chart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One UV vertex per (mesh vertex, chart): (source vertex (n,), faces (m, 3)).

    The pair is one int64 key (vertex * charts + chart): a 1-D unique, same order as rows.
    """
    charts = int(chart.max()) + 1
    key = np.asarray(faces, dtype=np.int64).ravel() * charts + np.repeat(chart, 3)
    uniq, inverse = np.unique(key, return_inverse=True)
    return uniq // charts, inverse.reshape(-1, 3)


def pack_densities(start: float) -> Iterator[float]:
    """Texel densities to pack at, highest first. The first guess fills ``atlas_fill`` of
    the texture by area, but charts take their bounding boxes plus padding: a chart much
    longer than wide (the side of a thin plate, a mast), a ring, or thousands of small
    charts (a screw thread's folds, each face its own chart) fit only far below it. A
    coarser texture beats a refused order."""
    density = start
    for _ in range(_PACK_FINE_ATTEMPTS):
        yield density
        density *= _PACK_SHRINK
    while density >= start * _PACK_MIN_FRACTION:
        yield density
        density *= _PACK_COARSE_SHRINK


def _pack(
    corner_uv: np.ndarray, faces: np.ndarray, chart: np.ndarray, density: float, params: MeshParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Pack the charts with xatlas into one square atlas, starting at ``density`` texels per
    unit; returns (source idx, uv, faces, the density that fitted)."""
    source, uv_faces = _corner_vertices(faces, chart)
    uv = np.zeros((len(source), 2), dtype=np.float64)
    uv[uv_faces.ravel()] = corner_uv.reshape(-1, 2)
    size = params.texture_size
    for fitted in pack_densities(density):
        atlas = xatlas.Atlas()
        atlas.add_uv_mesh(
            np.ascontiguousarray(uv, dtype=np.float32),
            np.ascontiguousarray(uv_faces, dtype=np.uint32),
            np.ascontiguousarray(chart, dtype=np.uint32).reshape(-1, 1),
        )
        pack = xatlas.PackOptions()
        pack.resolution = size
        pack.texels_per_unit = fitted
        pack.padding = params.texture_padding
        pack.bilinear = True
        pack.blockAlign = True
        atlas.generate(xatlas.ChartOptions(), pack)
        if atlas.atlas_count == 1 and atlas.width <= size and atlas.height <= size:
            vmap, packed_faces, packed_uv = atlas[0]
            # xatlas normalises to its own width/height; rescale into the square texture.
            scale = np.array([atlas.width, atlas.height], dtype=np.float64) / size
            return (
                source[vmap.astype(np.int64)],
                packed_uv.astype(np.float64) * scale,
                packed_faces.astype(np.int64),
                fitted,
            )
    raise MeshProcessingFailed(f"UV charts do not fit one {size}px atlas", charts=int(chart.max()))


def _overlapping_faces(raster: Raster, size: int) -> np.ndarray:
    """Faces that share a texel centre strictly inside both (a fold in a chart).

    Centres on a shared edge belong to both neighbours legitimately; only barycentrics
    clear of every edge by ``_INSIDE_EPS`` count as a claim. Claims per texel are counted
    with one bincount over the image (no sort).
    """
    strict = (raster.bary > _INSIDE_EPS).all(axis=1)
    flat = raster.row[strict] * size + raster.col[strict]
    claims = np.bincount(flat, minlength=size * size)
    contested = claims[flat] > 1
    return np.unique(raster.face[strict][contested])


def _projection_unwrap(
    mesh: trimesh.Trimesh, params: MeshParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, Raster | None]:
    labels = _projection_labels(mesh)
    chart = _components(mesh, labels)
    # Projected at the scale of a sculpture in mm (a diagonal of 64-128 units; a power of two,
    # so exact): xatlas drops UV triangles below its own absolute area epsilon, and a 10 cm
    # part in metres packed its faces on top of each other.
    unit = 2.0 ** (np.floor(np.log2(diagonal_of(mesh))) - _UV_DIAGONAL_EXPONENT)
    corner_uv = _project(mesh, labels) / unit
    faces = np.asarray(mesh.faces, dtype=np.int64)
    area = float(mesh.area_faces.sum()) / (unit * unit)
    size = params.texture_size
    density = float(np.sqrt(params.atlas_fill * size * size / max(area, 1e-300)))
    passes = 0
    # Folds found before the first packing, in each chart's own projection: packing twice
    # (pack + rasterise, ~0.25 s at 20k) was the rule, not the exception. The check after
    # packing still decides.
    bad = _folded_faces(corner_uv, chart, _FOLD_MIN_DEPTH_TEXELS / density)
    if len(bad):
        passes = 1
        chart = _split_charts(mesh, chart, bad, last_resort=False)
        if int(chart.max()) + 1 > params.uv_max_charts:
            return _xatlas_instead(mesh, params, passes, int(chart.max()) + 1)
    while True:
        # Split charts pack at most as densely as before: start where the last pass fitted.
        try:
            source_uv, uv, packed_faces, density = _pack(corner_uv, faces, chart, density, params)
        except MeshProcessingFailed:
            if passes == 0:
                raise
            return _xatlas_instead(mesh, params, passes, int(chart.max()) + 1)
        raster = rasterize(uv, packed_faces, params.texture_size)
        bad = _overlapping_faces(raster, params.texture_size)
        if len(bad) == 0:
            return source_uv, uv, packed_faces, int(chart.max()) + 1, passes, raster
        passes += 1
        log.debug("uv overlap", faces=len(bad), passes=passes)
        chart = _split_charts(mesh, chart, bad, last_resort=passes > params.uv_overlap_passes)
        if int(chart.max()) + 1 > params.uv_max_charts:
            return _xatlas_instead(mesh, params, passes, int(chart.max()) + 1)


def _split_charts(
    mesh: trimesh.Trimesh, chart: np.ndarray, bad: np.ndarray, *, last_resort: bool
) -> np.ndarray:
    """Chart ids after splitting off folded faces: each folded face alone and the rest of
    its chart split by connectivity; as a last resort every face of an offending chart
    alone."""
    key = chart.copy()
    if last_resort:
        in_bad = np.isin(chart, chart[bad])
        key[in_bad] = chart.max() + 1 + np.arange(int(in_bad.sum()))
    else:
        key[bad] = chart.max() + 1 + np.arange(len(bad))
    _, split = np.unique(_components(mesh, key), return_inverse=True)
    return split.reshape(-1)


def _folded_faces(corner_uv: np.ndarray, chart: np.ndarray, min_overlap: float) -> np.ndarray:
    """Faces whose projection overlaps another face of their own chart: the folds
    :func:`_overlapping_faces` finds after packing, found before it, exactly.

    Pairs come from a grid of about one face per cell (per chart); two triangles overlap
    when no edge normal of either separates them (the separating axis theorem, exact for
    convex polygons). Neighbours that only touch along an edge or at a corner are
    separated; an overlap less than ``min_overlap`` deep (projection units) is not a fold.
    """
    tri = corner_uv
    m = len(tri)
    tmin, tmax = tri.min(axis=1), tri.max(axis=1)
    cell = float(np.median(np.max(tmax - tmin, axis=1)))
    if m < 2 or not cell > 0:
        return np.zeros(0, dtype=np.int64)
    while True:
        origin = np.floor(tmin.min(axis=0) / cell)
        c0 = (np.floor(tmin / cell) - origin).astype(np.int64)
        c1 = (np.floor(tmax / cell) - origin).astype(np.int64)
        lo_x, lo_y = np.ascontiguousarray(c0[:, 0]), np.ascontiguousarray(c0[:, 1])
        span_x, span_y = c1[:, 0] - lo_x + 1, c1[:, 1] - lo_y + 1
        # A few long faces among small ones (a plate's big flat triangles beside its
        # refined holes) span millions of median cells: 15 s here for a 20k-face bed. Coarser
        # cells find the same pairs (any two overlapping boxes share a cell, and each pair
        # is kept in one), so only the time depends on the cell.
        if int((span_x * span_y).sum()) <= _FOLD_MAX_CELLS_PER_FACE * m:
            break
        cell *= 2.0
    owner, place = _runs(span_x * span_y)
    cx = lo_x[owner] + place % span_x[owner]
    cy = lo_y[owner] + place // span_x[owner]
    # one sortable int64 key per (chart, cell)
    width, height = int(cx.max()) + 1, int(cy.max()) + 1
    key = (chart[owner] * width + cx) * height + cy
    order = np.argsort(key, kind="stable")
    key, owner, cx, cy = key[order], owner[order], cx[order], cy[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    group_end = np.repeat(ends, ends - starts)
    first, offset = _runs(group_end - np.arange(len(key)) - 1)  # each later entry of its cell
    a, b = owner[first], owner[first + 1 + offset]
    # each pair once: in the cell of the low corner of the two boxes' common part (floor is
    # monotonic: the larger of the two low cells)
    once = (np.maximum(lo_x[a], lo_x[b]) == cx[first]) & (np.maximum(lo_y[a], lo_y[b]) == cy[first])
    a, b = a[once], b[once]
    # and only when the boxes overlap by more than a touch
    boxes_overlap = np.ones(len(a), dtype=bool)
    for k in range(2):
        low, high = np.ascontiguousarray(tmin[:, k]), np.ascontiguousarray(tmax[:, k])
        boxes_overlap &= np.minimum(high[a], high[b]) - np.maximum(low[a], low[b]) > min_overlap
    a, b = a[boxes_overlap], b[boxes_overlap]
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    # corner-wise 1-D columns: numpy's reductions over a length-3 axis are slow
    xs = [np.ascontiguousarray(tri[:, i, 0]) for i in range(3)]
    ys = [np.ascontiguousarray(tri[:, i, 1]) for i in range(3)]
    pa_x, pa_y = [x[a] for x in xs], [y[a] for y in ys]
    pb_x, pb_y = [x[b] for x in xs], [y[b] for y in ys]
    depth = np.full(len(a), np.inf)
    for px, py in ((pa_x, pa_y), (pb_x, pb_y)):
        for i in range(3):
            j = (i + 1) % 3
            nx, ny = py[i] - py[j], px[j] - px[i]  # the edge's normal
            length = np.hypot(nx, ny)
            usable = length > 0
            nx, ny = nx / np.where(usable, length, 1.0), ny / np.where(usable, length, 1.0)
            qa = [pa_x[k] * nx + pa_y[k] * ny for k in range(3)]
            qb = [pb_x[k] * nx + pb_y[k] * ny for k in range(3)]
            top = np.minimum(
                np.maximum(np.maximum(qa[0], qa[1]), qa[2]),
                np.maximum(np.maximum(qb[0], qb[1]), qb[2]),
            )
            bottom = np.maximum(
                np.minimum(np.minimum(qa[0], qa[1]), qa[2]),
                np.minimum(np.minimum(qb[0], qb[1]), qb[2]),
            )
            depth = np.where(usable, np.minimum(depth, top - bottom), depth)
    folded = depth > min_overlap
    return np.unique(np.concatenate([a[folded], b[folded]]))


def _xatlas_instead(
    mesh: trimesh.Trimesh, params: MeshParams, passes: int, charts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, Raster | None]:
    """xatlas's own charts when the projection's folds split the surface into more charts
    than make a texture (or than one atlas holds), with the projection path's check: no
    texel claimed by two faces."""
    log.debug("uv projection folds too much; xatlas charts instead", charts=charts)
    source, uv, faces, xatlas_charts, _, _ = _xatlas_unwrap(mesh, params)
    raster = rasterize(uv, faces, params.texture_size)
    bad = _overlapping_faces(raster, params.texture_size)
    if len(bad):
        raise MeshProcessingFailed("the UV atlas folds over itself", faces=len(bad))
    return source, uv, faces, xatlas_charts, passes, raster


def _xatlas_unwrap(
    mesh: trimesh.Trimesh, params: MeshParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, Raster | None]:
    scale = 1.0 / diagonal_of(mesh)
    size = params.texture_size
    area = float(mesh.area) * scale * scale
    for density in pack_densities(
        float(np.sqrt(params.atlas_fill * size * size / max(area, 1e-300)))
    ):
        atlas = xatlas.Atlas()
        atlas.add_mesh(
            np.ascontiguousarray(mesh.vertices * scale, dtype=np.float32),
            np.ascontiguousarray(mesh.faces, dtype=np.uint32),
        )
        pack = xatlas.PackOptions()
        pack.resolution = size
        pack.padding = params.texture_padding
        pack.blockAlign = True
        pack.texels_per_unit = density
        atlas.generate(xatlas.ChartOptions(), pack)
        if atlas.atlas_count == 1 and atlas.width <= size and atlas.height <= size:
            vmap, faces, uv = atlas[0]
            uv = uv.astype(np.float64) * (
                np.array([atlas.width, atlas.height], dtype=np.float64) / size
            )
            charts = int(atlas.chart_count)
            return vmap.astype(np.int64), uv, faces.astype(np.int64), charts, 0, None
    raise MeshProcessingFailed(f"xatlas charts do not fit one {size}px atlas")


def diagonal_of(mesh: trimesh.Trimesh) -> float:
    d = float(np.linalg.norm(mesh.extents))
    return d if d > 0 else 1.0


def unwrap(mesh: trimesh.Trimesh, params: MeshParams) -> UVAtlas:
    """UV atlas of ``mesh`` (faces keep their order; vertices split at seams)."""
    if params.uv_method == "xatlas":
        source, uv, faces, charts, passes, raster = _xatlas_unwrap(mesh, params)
    else:
        source, uv, faces, charts, passes, raster = _projection_unwrap(mesh, params)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)[source]
    return UVAtlas(
        vertices=np.asarray(mesh.vertices, dtype=np.float64)[source],
        normals=normals,
        uv=uv,
        faces=faces,
        source_vertex=source,
        charts=charts,
        overlap_passes=passes,
        raster=raster,
        raster_size=params.texture_size if raster is not None else 0,
    )


def unwrap_arrays(request: tuple[np.ndarray, np.ndarray, MeshParams]) -> UVAtlas:
    """:func:`unwrap` of a mesh sent as (vertices, faces, params): a stage helper's job
    (``sculptsvc.workers.helper``). The trimesh built here from the same arrays computes
    the same normals, so the atlas is the one this process would have made. It goes back
    without its texel raster: 28 MB for the bunny at 1024 px took 0.1-0.2 s to send, more
    than rasterising again where a bake samples colours (a one-colour bake needs none)."""
    vertices, faces, params = request
    atlas = unwrap(trimesh.Trimesh(vertices, faces, process=False), params)
    return replace(atlas, raster=None, raster_size=0)


def warm_up_unwrap() -> None:
    """A stage helper's start: one atlas of a small sphere while the command loads its
    modules. The first xatlas call and the first pass through this module's numpy code pay
    set-up, and so does the first raster at full texture size: it covers as many texels
    whatever the mesh (the atlas is filled by area), and its arrays, once freed, raise
    glibc's mmap threshold, so the request's arrays of the same size come from memory
    already mapped (measured: the bunny's atlas 0.02-0.03 s sooner than after a 64 px one)."""
    unwrap(trimesh.creation.icosphere(subdivisions=2), MeshParams())


def bake_texture(atlas: UVAtlas, color_source: ColorSource, size: int) -> np.ndarray:
    """(size, size, 3) uint8 sRGB texture: the colour source sampled at every texel."""
    if isinstance(color_source, ConstantColorSource):
        # Charts and gutters alike take the one colour: the same image, without sampling
        # (nor the texels' raster).
        return np.full((size, size, 3), color_source.rgba[:3], dtype=np.uint8)
    raster = atlas.raster
    if raster is None or atlas.raster_size != size:
        raster = rasterize(atlas.uv, atlas.faces, size)
    if len(raster.face) == 0:
        raise MeshProcessingFailed("UV atlas covers no texel")
    corners = atlas.faces[raster.face]
    points = _interpolated(atlas.vertices, corners, raster.bary)
    normals = _interpolated(atlas.normals, corners, raster.bary)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    colors = np.asarray(color_source(points, normals))
    if colors.shape != (len(points), 4):
        raise MeshProcessingFailed(
            f"colour source returned shape {colors.shape}, expected ({len(points)}, 4)"
        )
    image = np.zeros((size, size, 3), dtype=np.uint8)
    filled = np.zeros((size, size), dtype=bool)
    image[raster.row, raster.col] = colors[:, :3].astype(np.uint8)
    filled[raster.row, raster.col] = True
    if not filled.any():
        raise MeshProcessingFailed("UV atlas covers no texel")
    # Gutter: every empty texel copies its nearest baked texel (one flat gather of rows).
    nearest = nearest_filled(filled)
    return np.take(image.reshape(-1, 3), nearest.ravel(), axis=0).reshape(size, size, 3)


def _interpolated(values: np.ndarray, corners: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(k, d): per texel, its face's corner ``values`` weighted by ``bary``.

    The same float64 sums, in the same order, as ``einsum("kc,kcd->kd", ...)`` (bit for
    bit), at half its time: three (k, d) gathers instead of one (k, 3, d) array."""
    out = bary[:, 0:1] * values[corners[:, 0]]
    out += bary[:, 1:2] * values[corners[:, 1]]
    out += bary[:, 2:3] * values[corners[:, 2]]
    return out


def nearest_filled(filled: np.ndarray) -> np.ndarray:
    """Flat index of a nearest ``True`` texel, per texel of an (h, w) bool image.

    OpenCV's distance transform with one label per source texel (a 5x5 chamfer metric),
    ten times faster than scipy's exact feature transform at 1024 px (9 ms vs 90 ms of a
    0.4 s bake). Where they differ, the choice is between texels at nearly the same
    distance: measured, every texel within 4 of a chart gets one exactly as near as the
    exact one, and those are the only gutter texels filtering can reach at full
    resolution (bilinear reads 1 texel out; the padding between charts is a few).
    """
    import cv2  # only a bake that samples colours needs OpenCV here

    _, labels = cv2.distanceTransformWithLabels(
        (~filled).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # label -> the flat index of its source texel (read off, not assumed to be scan order)
    source = np.flatnonzero(filled)
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.intp)
    lookup[labels.ravel()[source]] = source
    return lookup[labels]
