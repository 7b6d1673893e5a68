"""Block, registration keys, sprue and vents, laid out in the mold frame.

Mold frame: +z is the pull direction of half A (the pour side, on top when casting), the
parting plane is z = 0, the part's bounding box is centred on the z axis. Half B is below
and carries the male keys; half A carries the sockets, the sprue and the vents.

Keys are drafted frusta sunk ``key_sink_mm`` into half B (a key that only touches the
parting face turns into edges shared by four triangles once an STL reader welds it). A key's
socket is the same frustum grown by the clearance along its surface normal. Keys are placed
on a ring near the block's edge, never closer to the cavity than the wall (checked in xy
against the part's projection, which bounds the 3D distance from below), never in the way of
a channel, spread out by farthest-point sampling, and "polarised": the layout is not
symmetric under a 90/180 degree turn, so the halves close only one way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import manifold3d as m3
import numpy as np

from mold.errors import KeysDoNotFit
from mold.geometry import TriMesh, face_geometry
from mold.raycast import vertical_hits
from mold.spec import MoldParams, MoldSpec

_HEIGHT_BUCKET_MM = 0.01  # vent candidates this close in height count as equally high


@dataclass(frozen=True)
class Channel:
    """A vertical tapered hole from a cavity high point up through the top face."""

    kind: Literal["sprue", "vent"]
    point: np.ndarray  # (3,) the cavity high point it serves
    bottom_z: float
    top_z: float  # the block's top face
    radius_bottom: float
    radius_top: float  # at the top face

    def solid(self, params: MoldParams) -> m3.Manifold:
        """The cutting tool: from inside the cavity to above the top face."""
        z_end = self.top_z + params.channel_overshoot_mm
        slope = (self.radius_top - self.radius_bottom) / (self.top_z - self.bottom_z)
        r_end = self.radius_top + slope * params.channel_overshoot_mm
        return m3.Manifold.cylinder(
            z_end - self.bottom_z, self.radius_bottom, r_end, params.circular_segments
        ).translate((float(self.point[0]), float(self.point[1]), self.bottom_z))


@dataclass(frozen=True)
class Key:
    """A registration key centred at ``(x, y)`` on the parting plane."""

    x: float
    y: float
    radius: float  # at z = 0
    tip_radius: float
    height: float
    sink: float
    clearance: float

    def _radius_at(self, z: float) -> float:
        return self.radius + (self.tip_radius - self.radius) * z / self.height

    @property
    def normal_offset(self) -> float:
        """Radial offset that gives a gap of ``clearance`` along the drafted surface normal."""
        slope = (self.radius - self.tip_radius) / self.height
        return self.clearance * float(np.sqrt(1.0 + slope * slope))

    @property
    def outer_radius(self) -> float:
        """Widest extent of key or socket, for spacing checks."""
        return max(self._radius_at(-self.sink), self._radius_at(0.0) + self.normal_offset)

    def male(self, params: MoldParams) -> m3.Manifold:
        return m3.Manifold.cylinder(
            self.height + self.sink,
            self._radius_at(-self.sink),
            self.tip_radius,
            params.circular_segments,
        ).translate((self.x, self.y, -self.sink))

    def socket(self, params: MoldParams) -> m3.Manifold:
        z_lo, z_hi = -0.5 * self.sink, self.height + self.clearance
        off = self.normal_offset
        return m3.Manifold.cylinder(
            z_hi - z_lo,
            self._radius_at(z_lo) + off,
            max(self._radius_at(z_hi) + off, 0.0),
            params.circular_segments,
        ).translate((self.x, self.y, z_lo))


@dataclass(frozen=True)
class Layout:
    """Everything the booleans need, in the mold frame (mm)."""

    block_min: np.ndarray
    block_max: np.ndarray
    sprue: Channel
    vents: tuple[Channel, ...]
    keys: tuple[Key, ...]
    keys_polarised: bool

    @property
    def channels(self) -> tuple[Channel, ...]:
        return (self.sprue, *self.vents)


# --- sprue and vents --------------------------------------------------------------------------


def _top_point(vertices: np.ndarray, solid: m3.Manifold, radius: float, tol: float) -> np.ndarray:
    """The cavity's highest point, where the sprue meets it.

    On a flat top (CAD parts, plinths) that is the middle of the flat when the sprue fits
    inside it there, else the top vertex nearest that middle.
    """
    z = vertices[:, 2]
    z_top = float(z.max())
    top = vertices[z >= z_top - tol]
    middle = top.mean(axis=0)
    if len(top) >= 3:
        section = solid.slice(z_top - tol).to_polygons()
        polygons = [np.asarray(p, dtype=np.float64) for p in section]
        if signed_distance_2d(middle[None, :2], polygons)[0] <= -radius:
            return np.array([middle[0], middle[1], z_top])
    dist = np.linalg.norm(top[:, :2] - middle[:2], axis=1)
    order = np.lexsort((top[:, 1], top[:, 0], dist))
    return top[order[0]]


def _vertex_normals_z(mesh: TriMesh) -> np.ndarray:
    _, normals, areas = face_geometry(mesh.triangles)
    acc = np.zeros(len(mesh.vertices))
    for corner in range(3):
        np.add.at(acc, mesh.faces[:, corner], normals[:, 2] * areas)
    return acc


def vent_points(
    mesh: TriMesh, sprue_point: np.ndarray, spec: MoldSpec, params: MoldParams
) -> list[np.ndarray]:
    """Local high points of the cavity where air is trapped, highest first.

    A point qualifies when it is the highest vertex within ``vent_min_spacing_mm``, its
    surface faces up, and a vertical ray from it leaves the part (the vent must not cross
    the cavity). Points near the sprue or an earlier vent are skipped.
    """
    if spec.vent_count == 0:
        return []
    v, f = mesh.vertices, mesh.faces
    z = v[:, 2]
    # 1-ring local maxima (cheap), then the radius test on those few
    neighbour_max = np.full(len(v), -np.inf)
    for a, b in ((0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)):
        np.maximum.at(neighbour_max, f[:, a], z[f[:, b]])
    candidates = np.flatnonzero((z >= neighbour_max) & (_vertex_normals_z(mesh) > 0))
    if len(candidates) == 0:
        return []
    radius = params.vent_min_spacing_mm
    peaks = candidates[_highest_within(v, candidates, radius)]
    if len(peaks) == 0:
        return []
    eps = params.ray_epsilon_fraction * float(np.ptp(v, axis=0).max())  # the part's size
    origins = v[peaks] + np.array([0.0, 0.0, eps])
    blocked_up, _ = vertical_hits(mesh.triangles, origins)
    peaks = peaks[~blocked_up]
    points = v[peaks]
    level = np.round(points[:, 2] / _HEIGHT_BUCKET_MM)  # equal heights within a bucket tie
    chosen: list[np.ndarray] = []
    taken = [sprue_point[:2]]
    while len(chosen) < spec.vent_count:
        gap = np.min(np.linalg.norm(points[:, None, :2] - np.array(taken)[None], axis=2), axis=1)
        ok = np.flatnonzero(gap >= radius)
        if len(ok) == 0:
            break
        # highest first; among equally high points the one farthest from the others
        best = ok[np.lexsort((points[ok, 1], points[ok, 0], -gap[ok], -level[ok]))[0]]
        chosen.append(points[best].copy())
        taken.append(points[best, :2])
    return chosen


def _highest_within(v: np.ndarray, candidates: np.ndarray, radius: float) -> np.ndarray:
    """For each candidate vertex: does no vertex within ``radius`` (inclusive) stand higher?

    A fixed-radius neighbour search on a grid of ``radius`` cells (a candidate's ball lies in
    its cell and the 26 around it), in numpy: scipy's KD-tree would cost ``sculpt mold``
    its 0.1 s import for a few dozen candidates.
    """
    cell = np.floor((v - v.min(axis=0)) / radius).astype(np.int64) + 1  # a margin cell each side
    dims = cell.max(axis=0) + 2
    key = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    own = cell[candidates]
    highest = np.ones(len(candidates), dtype=bool)
    for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3):
        near = ((own[:, 0] + dx) * dims[1] + own[:, 1] + dy) * dims[2] + own[:, 2] + dz
        start = np.searchsorted(ordered, near, side="left")
        count = np.searchsorted(ordered, near, side="right") - start
        owner = np.repeat(np.arange(len(candidates)), count)
        offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        other = order[np.repeat(start, count) + offset]
        centre = v[candidates[owner]]
        inside = ((v[other] - centre) ** 2).sum(axis=1) <= radius * radius
        higher = inside & (v[other, 2] > centre[:, 2])
        highest[owner[higher]] = False
    return highest


def make_channels(
    mesh: TriMesh,
    solid: m3.Manifold,
    top_z: float,
    sprue_mm: float,
    spec: MoldSpec,
    params: MoldParams,
) -> tuple[Channel, tuple[Channel, ...]]:
    """Sprue (``sprue_mm`` across at the cavity) at the cavity's highest point, vents at
    the other local high points."""
    top = _top_point(mesh.vertices, solid, 0.5 * sprue_mm, params.plane_vertex_clearance_mm)
    taper = float(np.tan(np.radians(params.sprue_taper_deg)))
    bottom_z = float(top[2]) - params.channel_overlap_mm
    r_bottom = 0.5 * sprue_mm
    sprue = Channel("sprue", top, bottom_z, top_z, r_bottom, r_bottom + taper * (top_z - bottom_z))
    r_vent = 0.5 * spec.vent_diameter_mm
    vents = tuple(
        Channel("vent", p, float(p[2]) - params.channel_overlap_mm, top_z, r_vent, r_vent)
        for p in vent_points(mesh, top, spec, params)
    )
    return sprue, vents


# --- keys ---------------------------------------------------------------------------------------


def signed_distance_2d(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """Distance from ``(k, 2)`` points to the polygons' boundary, negative inside (even-odd)."""
    if not polygons:
        return np.full(len(points), np.inf)
    a = np.concatenate(polygons)
    b = np.concatenate([np.roll(p, -1, axis=0) for p in polygons])
    ab = b - a
    ap = points[:, None, :] - a[None, :, :]
    denom = np.maximum((ab * ab).sum(axis=1), 1e-300)
    t = np.clip((ap * ab[None]).sum(axis=2) / denom[None], 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    dist = np.linalg.norm(points[:, None, :] - closest, axis=2).min(axis=1)
    py = points[:, 1][:, None]
    straddle = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[None, :, 0] + (py - a[None, :, 1]) * ab[None, :, 0] / ab[None, :, 1]
    crossings = (straddle & (points[:, 0][:, None] < x_cross)).sum(axis=1)
    return np.where(crossings % 2 == 1, -dist, dist)


def _ring_candidates(lo: np.ndarray, hi: np.ndarray, per_side: int) -> np.ndarray:
    """Points on the rectangle ``lo..hi``: the four corners first, then along each side."""
    corners = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    pts = list(corners)
    ts = np.linspace(0.0, 1.0, per_side)[1:-1]
    for i in range(4):
        p, q = np.array(corners[i]), np.array(corners[(i + 1) % 4])
        pts.extend(tuple(p + t * (q - p)) for t in ts)
    return np.array(pts, dtype=np.float64)


def _symmetric(points: np.ndarray, centre: np.ndarray, square: bool, tol: float) -> bool:
    """Whether a quarter or half turn about ``centre`` maps the key layout onto itself."""
    rel = points - centre
    turns = [np.array([[-1.0, 0.0], [0.0, -1.0]])]
    if square:
        turns.append(np.array([[0.0, -1.0], [1.0, 0.0]]))
    for turn in turns:
        moved = rel @ turn.T
        d = np.linalg.norm(moved[:, None, :] - rel[None, :, :], axis=2)
        if (d.min(axis=1) < tol).all():
            return True
    return False


def _pick_keys(
    cands: np.ndarray, n: int, min_spacing: float, centre: np.ndarray, square: bool, tol: float
) -> tuple[list[int], bool] | None:
    """Farthest-point choice of ``n`` candidates, then polarise; ``None`` if ``n`` won't fit."""
    chosen = [0]
    while len(chosen) < n:
        d = np.linalg.norm(cands[:, None, :] - cands[chosen][None], axis=2).min(axis=1)
        d[chosen] = -1.0
        best = int(np.argmax(d))  # first index wins ties
        if d[best] < min_spacing:
            return None
        chosen.append(best)
    if not _symmetric(cands[chosen], centre, square, tol):
        return chosen, True
    for slot in range(len(chosen) - 1, -1, -1):
        others = [c for j, c in enumerate(chosen) if j != slot]
        by_distance = np.argsort(np.linalg.norm(cands - cands[chosen[slot]], axis=1), kind="stable")
        for alt in by_distance:
            if alt in chosen:
                continue
            if np.linalg.norm(cands[others] - cands[alt], axis=1).min() < min_spacing:
                continue
            trial = [*others[:slot], int(alt), *others[slot:]]
            if not _symmetric(cands[trial], centre, square, tol):
                return trial, True
    return chosen, False


def make_keys(
    projection: list[np.ndarray],
    part_lo: np.ndarray,
    part_hi: np.ndarray,
    channels: tuple[Channel, ...],
    spec: MoldSpec,
    params: MoldParams,
) -> tuple[tuple[Key, ...], float, bool]:
    """Place the keys, growing the block sideways until they fit: ``(keys, margin, polarised)``."""
    r0 = 0.5 * spec.key_diameter_mm
    key_proto = Key(
        0.0,
        0.0,
        r0,
        r0 * params.key_tip_ratio,
        params.key_height_ratio * spec.key_diameter_mm,
        params.key_sink_mm,
        spec.clearance_mm,
    )
    r_out = key_proto.outer_radius
    inset = params.key_edge_margin_mm + r_out
    min_spacing = 2.0 * r_out + params.key_edge_margin_mm
    centre = 0.5 * (part_lo[:2] + part_hi[:2])
    margin = spec.wall_mm
    for _ in range(params.key_margin_growth_steps + 1):
        lo, hi = part_lo[:2] - margin + inset, part_hi[:2] + margin - inset
        if np.all(hi > lo):
            cands = _ring_candidates(lo, hi, params.key_candidates_per_side)
            ok = signed_distance_2d(cands, projection) >= spec.wall_mm + r_out
            for ch in channels:
                gap = np.linalg.norm(cands - ch.point[:2], axis=1)
                ok &= gap >= r_out + ch.radius_top + params.key_edge_margin_mm
            valid = cands[ok]
            if len(valid) >= spec.key_count:
                extent = hi - lo
                square = abs(float(extent[0] - extent[1])) < r0
                picked = _pick_keys(valid, spec.key_count, min_spacing, centre, square, r0)
                if picked is not None:
                    idx, polarised = picked
                    keys = tuple(
                        Key(
                            float(valid[i, 0]),
                            float(valid[i, 1]),
                            key_proto.radius,
                            key_proto.tip_radius,
                            key_proto.height,
                            key_proto.sink,
                            key_proto.clearance,
                        )
                        for i in idx
                    )
                    return keys, margin, polarised
        margin += r_out
    raise KeysDoNotFit(
        f"{spec.key_count} keys of {spec.key_diameter_mm} mm do not fit around the cavity",
        key_count=spec.key_count,
        key_diameter_mm=spec.key_diameter_mm,
    )


def plan_layout(mesh: TriMesh, solid: m3.Manifold, spec: MoldSpec, params: MoldParams) -> Layout:
    """Block bounds, channels and keys for the part already in the mold frame."""
    v = mesh.vertices
    part_lo, part_hi = v.min(axis=0), v.max(axis=0)
    sprue_mm = spec.sprue_mm(float(np.min(part_hi[:2] - part_lo[:2])))
    top_z = float(part_hi[2]) + max(spec.wall_mm, params.sprue_min_length_mm)
    bottom_z = float(part_lo[2]) - spec.wall_mm
    sprue, vents = make_channels(mesh, solid, top_z, sprue_mm, spec, params)
    projection = [np.asarray(p, dtype=np.float64) for p in solid.project().to_polygons()]
    keys, margin, polarised = make_keys(projection, part_lo, part_hi, (sprue, *vents), spec, params)
    block_min = np.array([part_lo[0] - margin, part_lo[1] - margin, bottom_z])
    block_max = np.array([part_hi[0] + margin, part_hi[1] + margin, top_z])
    return Layout(block_min, block_max, sprue, vents, keys, polarised)
