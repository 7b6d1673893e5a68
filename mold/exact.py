"""Exact confirmation of the per-face self-intersection flags of pymeshlab (VCG).

VCG tests in floating point. For two faces that share one vertex it tests the segment
halfway to the opposite edge against the other face; on faces that are nearly coplanar
(a cone's side cut by longest-edge bisection, a sphere's pole fan) and whose corners were
rounded to float32, it flags pairs that meet only at their shared vertex. One such flag
sends a clean CAD part to the voxel rebuild, which rounds its edges.

Here a flagged face stays flagged unless every face that could touch it (bounding boxes
overlapping, not sharing an edge: VCG skips those too) is proven, in exact integer
arithmetic on the very float64 coordinates, to meet it nowhere (no shared vertex) or only
at the shared vertex. Flags are only ever removed, and whatever is not proven stays
flagged (coplanar pairs without a shared vertex, an edge lying in the other face's plane,
faces touching at a point), so a real crossing is never let through.
"""

from __future__ import annotations

import numpy as np

MAX_CONFIRMED_FACES = 4000
"""Above this many flagged faces the surface really is tangled (it goes to the voxel
rebuild anyway): the flags are kept as they are instead of confirmed one by one."""

_OVERLAP_BLOCK = 4_000_000  # face pairs whose bounding boxes are compared in one go
_FILTER_CHUNK = 200_000  # overlapping pairs through the floating-point filters at once

Point = tuple[int, int, int]


def confirmed_crossings(vertices: np.ndarray, faces: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """``flagged`` (m,) bool without the faces proven to cross no other face."""
    flagged = np.asarray(flagged, dtype=bool)
    count = int(flagged.sum())
    if count == 0 or count > MAX_CONFIRMED_FACES:
        return flagged
    faces = np.asarray(faces, dtype=np.int64)
    vertices = np.asarray(vertices, dtype=np.float64)
    points: list[Point] | None = None  # exact integers, made only if a pair needs them
    corners = vertices[faces]
    low, high = corners.min(axis=1), corners.max(axis=1)
    confirmed = flagged.copy()
    ids = np.flatnonzero(flagged)
    # bounding-box overlaps of a block of flagged faces with every face at once (a few
    # million comparisons per block), instead of one pass over all faces per flagged face
    block = max(1, _OVERLAP_BLOCK // len(faces))
    for start in range(0, len(ids), block):
        rows = ids[start : start + block]
        overlap = np.ones((len(rows), len(faces)), dtype=bool)
        for axis in range(3):
            overlap &= low[:, axis] <= high[rows, axis, None]
            overlap &= high[:, axis] >= low[rows, axis, None]
        overlap[np.arange(len(rows)), rows] = False
        row, other = np.nonzero(overlap)
        # Pairs that floating point already proves apart need no exact arithmetic, and a
        # face with a pair it proves crossing stays flagged as it is (in chunks: a fan's
        # boxes overlap by the million).
        open_pair = np.zeros(len(row), dtype=bool)
        crossing = np.zeros(len(row), dtype=bool)
        for lo in range(0, len(row), _FILTER_CHUNK):
            part = slice(lo, lo + _FILTER_CHUNK)
            f, g = rows[row[part]], other[part]
            open_pair[part] = ~_proven_apart(corners, faces, f, g)
            disjoint = ~(faces[f][:, :, None] == faces[g][:, None, :]).any(axis=(1, 2))
            disjoint &= open_pair[part]
            crossing[part][disjoint] = _proven_crossing(corners[f[disjoint]], corners[g[disjoint]])
        undecided = np.zeros(len(rows), dtype=bool)
        undecided[row[open_pair]] = True
        confirmed[rows[~undecided]] = False
        settled = np.zeros(len(rows), dtype=bool)
        settled[row[crossing]] = True
        keep = open_pair & ~settled[row]
        row, other = row[keep], other[keep]
        if len(row) == 0:
            continue
        if points is None:
            points = _exact_points(vertices)
        cuts = np.flatnonzero(np.diff(row)) + 1
        for pair_rows, pair_others in zip(np.split(row, cuts), np.split(other, cuts), strict=True):
            f = int(rows[pair_rows[0]])
            if not any(_may_cross(faces[f], faces[g], points) for g in pair_others.tolist()):
                confirmed[f] = False
    return confirmed


# Shewchuk's static error bound for orient3d evaluated as in ``_orient_signs`` ("Adaptive
# Precision Floating-Point Arithmetic and Fast Robust Geometric Predicates", 1997): a
# floating-point determinant larger than this x its permanent has the exact sign.
_EPSILON = 2.0**-53
_ORIENT3D_BOUND = (7.0 + 56.0 * _EPSILON) * _EPSILON
_MIN_PERMANENT = 1e-200  # below, underflow could void the bound: left to exact arithmetic


def _certified_orient(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Side of ``d`` of the plane through ``a``, ``b``, ``c`` (arrays of xyz rows that
    broadcast): +1 or -1 where floating point proves the sign, 0 where it cannot (on or
    near the plane, or a degenerate plane). Evaluated as Shewchuk's orient3d, whose error
    bound holds for exactly these operations."""
    ad, bd, cd = a - d, b - d, c - d
    adx, ady, adz = ad[..., 0], ad[..., 1], ad[..., 2]
    bdx, bdy, bdz = bd[..., 0], bd[..., 1], bd[..., 2]
    cdx, cdy, cdz = cd[..., 0], cd[..., 1], cd[..., 2]
    bdxcdy, cdxbdy = bdx * cdy, cdx * bdy
    cdxady, adxcdy = cdx * ady, adx * cdy
    adxbdy, bdxady = adx * bdy, bdx * ady
    det = adz * (bdxcdy - cdxbdy) + bdz * (cdxady - adxcdy) + cdz * (adxbdy - bdxady)
    permanent = (
        (np.abs(bdxcdy) + np.abs(cdxbdy)) * np.abs(adz)
        + (np.abs(cdxady) + np.abs(adxcdy)) * np.abs(bdz)
        + (np.abs(adxbdy) + np.abs(bdxady)) * np.abs(cdz)
    )
    certain = (np.abs(det) > _ORIENT3D_BOUND * permanent) & (permanent > _MIN_PERMANENT)
    return np.where(certain, np.sign(det), 0.0).astype(np.int8)


def _orient_signs(plane: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(k, 3) certified sides of ``points`` (k, 3, 3) of the planes of ``plane`` (k, 3, 3)."""
    return _certified_orient(
        plane[:, None, 0, :], plane[:, None, 1, :], plane[:, None, 2, :], points
    )


def _proven_crossing(t: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per pair of triangles without a shared vertex ((k, 3, 3) each), True where floating
    point proves what :func:`_triangles_meet` finds exactly: an edge of one strictly
    straddles the other's plane and passes strictly inside the other."""
    side_t = _orient_signs(u, t)  # t's corners against u's plane
    side_u = _orient_signs(t, u)
    hit = np.zeros(len(t), dtype=bool)
    for edges_of, sides, other in ((t, side_t, u), (u, side_u, t)):
        for i, j in ((0, 1), (1, 2), (2, 0)):
            straddles = sides[:, i] * sides[:, j] < 0
            p, q = edges_of[:, i], edges_of[:, j]
            turns = np.stack(
                [_certified_orient(p, q, other[:, m], other[:, (m + 1) % 3]) for m in range(3)],
                axis=1,
            )
            hit |= straddles & ((turns > 0).all(axis=1) | (turns < 0).all(axis=1))
    return hit


def _proven_apart(
    corners: np.ndarray, faces: np.ndarray, f: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """Per face pair (f, g), True where :func:`_may_cross` is sure to say False, proven in
    floating point with an error bound: faces sharing an edge (not tested), and faces whose
    corners off the other's plane (those not shared with it) all lie strictly on one side
    of it. A pair sharing a vertex then meets only there; one sharing none meets nowhere."""
    same = faces[f][:, :, None] == faces[g][:, None, :]  # (k, corner of f, corner of g)
    shared = same.any(axis=2).sum(axis=1)
    # a face naming a vertex twice has no plane: left to the exact test
    plain = _distinct_corners(faces[f]) & _distinct_corners(faces[g])
    apart = (shared == 2) & plain
    test = np.flatnonzero((shared <= 1) & plain)
    if len(test) == 0:
        return apart
    tf, tg = corners[f[test]], corners[g[test]]
    for plane, others, own in ((tf, tg, same[test].any(axis=1)), (tg, tf, same[test].any(axis=2))):
        sides = _orient_signs(plane, others)
        off = ~own  # the corners not shared with the plane's face
        above = np.where(off, sides > 0, True).all(axis=1)
        below = np.where(off, sides < 0, True).all(axis=1)
        apart[test] |= above | below
    # Sharing a vertex, a face of no area counts as meeting the other (``_cones_meet``):
    # apart only when both are proven to have some.
    one = test[shared[test] == 1]
    apart[one] &= _proven_area(corners[f[one]]) & _proven_area(corners[g[one]])
    return apart


def _distinct_corners(faces: np.ndarray) -> np.ndarray:
    return (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    )


_ORIENT2D_BOUND = (3.0 + 16.0 * _EPSILON) * _EPSILON


def _proven_area(tri: np.ndarray) -> np.ndarray:
    """Per triangle ((k, 3, 3) corners), True where floating point proves its corners are
    not collinear: some component of the edges' cross product (a 2-D orientation in a
    coordinate plane) has a certain nonzero sign (Shewchuk's orient2d bound)."""
    out = np.zeros(len(tri), dtype=bool)
    for x, y in ((0, 1), (1, 2), (2, 0)):
        ac = tri[:, 0, [x, y]] - tri[:, 2, [x, y]]
        bc = tri[:, 1, [x, y]] - tri[:, 2, [x, y]]
        left, right = ac[:, 0] * bc[:, 1], ac[:, 1] * bc[:, 0]
        bound = _ORIENT2D_BOUND * (np.abs(left) + np.abs(right))
        out |= (np.abs(left - right) > bound) & (np.abs(left) + np.abs(right) > _MIN_PERMANENT)
    return out


def _exact_points(vertices: np.ndarray) -> list[Point]:
    """Every coordinate as an integer over one common power-of-two denominator (exact:
    a float64 is an integer times a power of two; one positive scale keeps every sign)."""
    ratios = [value.as_integer_ratio() for value in vertices.ravel().tolist()]
    denominator = max(d for _, d in ratios)
    ints = [n * (denominator // d) for n, d in ratios]
    return [(ints[i], ints[i + 1], ints[i + 2]) for i in range(0, len(ints), 3)]


def _may_cross(face: np.ndarray, other: np.ndarray, points: list[Point]) -> bool:
    """False only when the two faces are proven to meet nowhere, or only at one shared
    vertex; faces sharing an edge are not tested (as VCG does not)."""
    a, b = face.tolist(), other.tolist()
    shared = set(a) & set(b)
    if len(shared) == 2:
        return False
    if len(shared) == 3:
        return True
    if len(shared) == 1:
        (v,) = shared
        rest_a = [points[i] for i in a if i != v]
        rest_b = [points[i] for i in b if i != v]
        return _cones_meet(points[v], rest_a, rest_b)
    return _triangles_meet([points[i] for i in a], [points[i] for i in b]) is not False


# --- exact predicates on integer points ------------------------------------------------------


def _sub(p: Point, q: Point) -> Point:
    return (p[0] - q[0], p[1] - q[1], p[2] - q[2])


def _cross(p: Point, q: Point) -> Point:
    return (p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0])


def _dot(p: Point, q: Point) -> int:
    return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]


def _orient(a: Point, b: Point, c: Point, d: Point) -> int:
    """Sign of the volume of (a, b, c, d): which side of plane abc the point d is on."""
    return _dot(_cross(_sub(b, a), _sub(c, a)), _sub(d, a))


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _triangles_meet(t: list[Point], u: list[Point]) -> bool | None:
    """Whether two closed triangles without a shared vertex meet: True, False, or None
    when not decided here (coplanar, or an edge in the other's plane)."""
    side_u = [_sign(_orient(t[0], t[1], t[2], p)) for p in u]
    if all(s > 0 for s in side_u) or all(s < 0 for s in side_u):
        return False
    side_t = [_sign(_orient(u[0], u[1], u[2], p)) for p in t]
    if all(s > 0 for s in side_t) or all(s < 0 for s in side_t):
        return False
    if all(s == 0 for s in side_u):
        return None
    # Not coplanar: their common part is a segment whose ends lie on edges of one of them.
    undecided = False
    for edges, sides, other in ((_edges(t), side_t, u), (_edges(u), side_u, t)):
        for (i, j), (p, q) in edges:
            hit = _segment_meets_triangle(p, q, sides[i], sides[j], other)
            if hit:
                return True
            undecided |= hit is None
    return None if undecided else False


def _edges(t: list[Point]) -> list[tuple[tuple[int, int], tuple[Point, Point]]]:
    return [((i, (i + 1) % 3), (t[i], t[(i + 1) % 3])) for i in range(3)]


def _segment_meets_triangle(
    p: Point, q: Point, side_p: int, side_q: int, t: list[Point]
) -> bool | None:
    """Segment pq against the closed triangle t, given the sides of p and q of t's plane."""
    if side_p * side_q > 0:
        return False
    if side_p == 0 and side_q == 0:
        return None  # the segment lies in the triangle's plane
    turns = [_sign(_orient(p, q, t[i], t[(i + 1) % 3])) for i in range(3)]
    return all(s >= 0 for s in turns) or all(s <= 0 for s in turns)


def _cones_meet(v: Point, rest_a: list[Point], rest_b: list[Point]) -> bool:
    """Whether two triangles sharing only the corner ``v`` have another point in common.

    Both are convex and hold ``v``: they share more than ``v`` exactly when some direction
    from ``v`` points into both (their corners' cones meet beyond ``v``). Degenerate
    corners count as meeting."""
    e1, f1 = _sub(rest_a[0], v), _sub(rest_a[1], v)
    e2, f2 = _sub(rest_b[0], v), _sub(rest_b[1], v)
    n1, n2 = _cross(e1, f1), _cross(e2, f2)
    if n1 == (0, 0, 0) or n2 == (0, 0, 0):
        return True
    line = _cross(n1, n2)
    if line == (0, 0, 0):  # one plane: two sectors around v
        if _dot(n1, n2) < 0:
            e2, f2 = f2, e2  # both counter-clockwise about n1
        return any(_in_cone(r, e1, f1, n1) for r in (e2, f2)) or any(
            _in_cone(r, e2, f2, n1) for r in (e1, f1)
        )
    minus = (-line[0], -line[1], -line[2])
    return any(_in_cone(d, e1, f1, n1) and _in_cone(d, e2, f2, n2) for d in (line, minus))


def _in_cone(d: Point, e: Point, f: Point, n: Point) -> bool:
    """Whether ``d`` (in the plane of e and f, normal ``n = e x f``) lies in the closed
    cone from ``e`` to ``f`` (an angle below 180 degrees)."""
    return _dot(_cross(e, d), n) >= 0 and _dot(_cross(d, f), n) >= 0
