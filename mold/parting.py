"""Choose the pull direction and the parting plane.

For a pull direction ``d`` and a plane ``x . d = h``, a face above the plane belongs to half
A, which is pulled towards ``+d``: it releases if a ray from it towards ``+d`` leaves the part
without hitting it again; a face below belongs to half B, pulled towards ``-d``. The
undercut area is the area of faces that do not release. Both rays are cast once per face and
direction, so every level ``h`` is scored with a cumulative sum. Among levels whose undercut
is within a small tie of the best, the one with the largest cross-section wins (the widest
parting face gives the shallowest cavities and the most room for keys).

Candidates: the part's three axes and its three principal axes (area-weighted covariance of
the surface). Directions are ranked on a deterministic area-weighted sample of faces; each
one the mold tries is then re-scored on every face for the report. The ranking is only a
forecast: the mold gates the best-ranked parting and, when a gate refuses it (a loose
island of mold material, keys that do not fit, a wall too thin), the next ones: other
directions at their best level, then other levels (:func:`ranked_candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import manifold3d as m3
import numpy as np

from mold.errors import InvalidSpec
from mold.geometry import TriMesh, affine, face_geometry, frame_for_direction, transform_manifold
from mold.raycast import vertical_hits
from mold.spec import MoldParams, MoldSpec

_AXES = {"x": np.array([1.0, 0.0, 0.0]), "y": np.array([0.0, 1.0, 0.0]), "z": np.eye(3)[2]}


@dataclass(frozen=True)
class CandidateScore:
    """One pull direction tried, with its best level (part frame, mm)."""

    name: str
    direction: np.ndarray
    level_mm: float
    undercut_fraction: float
    cross_section_mm2: float


@dataclass(frozen=True)
class Parting:
    """The chosen pull direction ``+z`` of ``rotation`` and the plane ``x . d = level_mm``."""

    name: str
    direction: np.ndarray
    rotation: np.ndarray
    level_mm: float
    cross_section_mm2: float
    undercut_fraction_a: float
    undercut_fraction_b: float
    undercut_area_a_mm2: float
    undercut_area_b_mm2: float
    undercut_faces_cast: int  # faces the undercut was measured on (all, or a sample)
    candidates: tuple[CandidateScore, ...]


def candidate_directions(
    centroids: np.ndarray, areas: np.ndarray, spec: MoldSpec, params: MoldParams
) -> list[tuple[str, np.ndarray]]:
    """Named unit directions to try: the part axes, then principal axes not already covered."""
    if spec.parting != "auto":
        return [(spec.parting, _AXES[spec.parting])]
    out = [(name, axis) for name, axis in _AXES.items()]
    weights = areas / areas.sum()
    mean = weights @ centroids
    centred = centroids - mean
    cov = (centred * weights[:, None]).T @ centred
    _, vecs = np.linalg.eigh(cov)
    cos_limit = np.cos(np.radians(params.principal_axis_dedupe_deg))
    for i in range(2, -1, -1):  # largest spread first
        vec = vecs[:, i]
        vec = vec * (1.0 if vec[int(np.argmax(np.abs(vec)))] > 0 else -1.0)
        if all(abs(float(vec @ d)) < cos_limit for _, d in out):
            out.append((f"principal{3 - i}", vec / np.linalg.norm(vec)))
    return out


def release_rays(
    tris: np.ndarray, centroids: np.ndarray, normals: np.ndarray, rotation: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(blocked_up, blocked_down)`` per face for the pull direction ``rotation[2]``."""
    # one (3m, 3) product: numpy's stacked (m, 3, 3) matmul is ~5x slower on big parts
    rotated = (tris.reshape(-1, 3) @ rotation.T).reshape(tris.shape)
    origins = (centroids + eps * normals) @ rotation.T
    return vertical_hits(rotated, origins)


def clear_level(level: float, projections: np.ndarray, clearance: float, max_shift: float) -> float:
    """Move ``level`` a little so that no vertex lies within ``clearance`` of the plane.

    A plane through vertices or flat faces (CAD parts) makes coplanar slivers in the split.
    Only gaps between vertex heights within ``max_shift`` are considered; on a dense mesh
    where none is wide enough, the middle of the widest one is used.
    """
    ps = np.unique(projections)
    if np.min(np.abs(ps - level)) >= clearance:
        return level
    lows, highs = ps[:-1], ps[1:]
    near = (highs >= level - max_shift) & (lows <= level + max_shift)
    lows, highs = lows[near], highs[near]
    if len(lows) == 0:
        return level
    wide = highs - lows >= 2.0 * clearance
    if wide.any():
        clamped = np.clip(level, lows[wide] + clearance, highs[wide] - clearance)
        return float(clamped[int(np.argmin(np.abs(clamped - level)))])
    widest = int(np.argmax(highs - lows))
    return float(0.5 * (lows[widest] + highs[widest]))


def _levels(projections: np.ndarray, spec: MoldSpec, params: MoldParams) -> np.ndarray:
    lo, hi = float(projections.min()), float(projections.max())
    if spec.parting_offset_mm is not None:
        level = spec.parting_offset_mm
        if not lo < level < hi:
            raise InvalidSpec(
                "parting_offset_mm puts the plane outside the part",
                parting_offset_mm=level,
                part_extent_mm=[round(lo, 3), round(hi, 3)],
            )
        return np.array([level])
    margin = params.parting_level_margin * (hi - lo)
    return np.linspace(lo + margin, hi - margin, params.parting_levels)


def _score_levels(
    levels: np.ndarray,
    heights: np.ndarray,
    blocked_up: np.ndarray,
    blocked_down: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Undercut fraction for each level: faces above use the up ray, faces below the down."""
    above = heights[None, :] > levels[:, None]
    blocked = np.where(above, blocked_up[None, :], blocked_down[None, :])
    return (blocked * weights[None, :]).sum(axis=1) / weights.sum()


def _pick_level(levels: np.ndarray, undercut: np.ndarray, areas: np.ndarray, tie: float) -> int:
    eligible = undercut <= undercut.min() + tie
    mid = 0.5 * (levels[0] + levels[-1])
    # largest cross-section among near-best levels; then nearest the middle; then first
    keys = [(-float(areas[i]), abs(float(levels[i]) - mid), i) for i in np.flatnonzero(eligible)]
    return min(keys)[2]


def parting_for(
    chosen: CandidateScore,
    part: TriMesh,
    solid: m3.Manifold,
    params: MoldParams,
    scores: tuple[CandidateScore, ...],
) -> Parting:
    """Re-score one (direction, level) for the report, on every face (above
    ``parting_report_faces``: on an area-weighted sample, which estimates the same area
    fractions; one ray per face of a million-face scan cost 6.5 s and 2 GB); move the plane
    off vertices."""
    tris = part.triangles
    centroids, normals, areas = face_geometry(tris)
    eps = params.ray_epsilon_fraction * float(np.ptp(part.vertices, axis=0).max())
    rotation = frame_for_direction(chosen.direction)
    level = clear_level(
        chosen.level_mm,
        part.vertices @ chosen.direction,
        params.plane_vertex_clearance_mm,
        params.plane_max_shift_mm,
    )
    above = centroids @ chosen.direction > level
    area_a, area_b = float(areas[above].sum()), float(areas[~above].sum())
    if len(areas) > params.parting_report_faces:
        rng = np.random.default_rng(params.parting_seed)
        cast = rng.choice(len(areas), params.parting_report_faces, p=areas / areas.sum())
        up, down = release_rays(tris, centroids[cast], normals[cast], rotation, eps)
        side = above[cast]
        # each sample stands for an equal share of its side's area
        under_a = area_a * float((side & up).sum()) / max(int(side.sum()), 1)
        under_b = area_b * float((~side & down).sum()) / max(int((~side).sum()), 1)
        faces_cast = len(cast)
    else:
        up, down = release_rays(tris, centroids, normals, rotation, eps)
        under_a = float(areas[above & up].sum())
        under_b = float(areas[~above & down].sum())
        faces_cast = len(areas)
    section = transform_manifold(solid, affine(rotation)).slice(level).area()
    return Parting(
        name=chosen.name,
        direction=chosen.direction,
        rotation=rotation,
        level_mm=level,
        cross_section_mm2=float(section),
        undercut_fraction_a=under_a / area_a if area_a > 0 else 0.0,
        undercut_fraction_b=under_b / area_b if area_b > 0 else 0.0,
        undercut_area_a_mm2=under_a,
        undercut_area_b_mm2=under_b,
        undercut_faces_cast=faces_cast,
        candidates=scores,
    )


def ranked_candidates(
    part: TriMesh, solid: m3.Manifold, spec: MoldSpec, params: MoldParams
) -> tuple[list[CandidateScore], tuple[CandidateScore, ...]]:
    """(partings to try, best first; each direction's best) in the part frame, mm.

    1. the best: among directions whose best level is within the tie of the lowest
       undercut, the largest cross-section (what :func:`choose_parting` returns);
    2. every other direction at its best level, by undercut, then cross-section;
    3. other levels of each direction (``parting_alternate_levels`` per direction, at
       least ``parting_level_separation`` of the extent apart), by undercut, then section.

    The mold tries them in this order when a parting fails a gate (at most
    ``parting_fallback_candidates``); :func:`parting_for` completes each one it tries.
    """
    tris = part.triangles
    centroids, normals, areas = face_geometry(tris)
    size = float(np.ptp(part.vertices, axis=0).max())
    eps = params.ray_epsilon_fraction * size
    tie = params.undercut_tie_fraction

    n_faces = len(areas)
    if n_faces > params.parting_sample_faces:
        rng = np.random.default_rng(params.parting_seed)
        sample = np.sort(
            rng.choice(n_faces, params.parting_sample_faces, replace=False, p=areas / areas.sum())
        )
        weights = np.ones(len(sample))
    else:
        sample = np.arange(n_faces)
        weights = areas

    scores: list[CandidateScore] = []
    alternates: list[CandidateScore] = []
    for name, direction in candidate_directions(centroids, areas, spec, params):
        rotation = frame_for_direction(direction)
        up, down = release_rays(tris, centroids[sample], normals[sample], rotation, eps)
        heights = centroids[sample] @ direction
        projections = part.vertices @ direction
        levels = _levels(projections, spec, params)
        undercut = _score_levels(levels, heights, up, down, weights)
        rotated = transform_manifold(solid, affine(rotation))
        sections = np.array([rotated.slice(float(h)).area() for h in levels])
        best = _pick_level(levels, undercut, sections, tie)
        scores.append(
            CandidateScore(
                name, direction, float(levels[best]), float(undercut[best]), float(sections[best])
            )
        )
        gap = params.parting_level_separation * float(np.ptp(projections))
        taken = [float(levels[best])]
        for i in sorted(range(len(levels)), key=lambda i: (undercut[i], -sections[i], i)):
            if len(taken) > params.parting_alternate_levels:
                break
            if all(abs(float(levels[i]) - t) >= gap for t in taken) and sections[i] > 0:
                taken.append(float(levels[i]))
                alternates.append(
                    CandidateScore(
                        name, direction, float(levels[i]), float(undercut[i]), float(sections[i])
                    )
                )

    best_undercut = min(s.undercut_fraction for s in scores)
    eligible = [s for s in scores if s.undercut_fraction <= best_undercut + tie]
    chosen = max(eligible, key=lambda s: s.cross_section_mm2)  # first wins ties

    def rank(c: CandidateScore) -> tuple[float, float]:
        return (c.undercut_fraction, -c.cross_section_mm2)

    others = sorted((s for s in scores if s is not chosen), key=rank)
    order = [chosen, *others, *sorted(alternates, key=rank)]
    return order, tuple(scores)


def choose_parting(
    part: TriMesh, solid: m3.Manifold, spec: MoldSpec, params: MoldParams
) -> Parting:
    """The best-ranked parting (see :func:`ranked_candidates`)."""
    order, scores = ranked_candidates(part, solid, spec, params)
    return parting_for(order[0], part, solid, params, scores)
