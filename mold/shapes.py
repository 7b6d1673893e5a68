"""Small closed parts generated in code, for tests, benchmarks and smoke checks.

Each returns ``(vertices (n, 3) float64, faces (m, 3) int64)`` of one closed solid, in
arbitrary units (``make_mold`` scales to ``size_mm``). Built with manifold3d so they are
exactly watertight; no files involved.
"""

from __future__ import annotations

import manifold3d as m3
import numpy as np


def _arrays(solid: m3.Manifold) -> tuple[np.ndarray, np.ndarray]:
    mesh = solid.to_mesh64()
    return (
        np.asarray(mesh.vert_properties[:, :3], dtype=np.float64),
        np.asarray(mesh.tri_verts, dtype=np.int64),
    )


def sphere(radius: float = 1.0, segments: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """No undercut at the equator from any direction."""
    return _arrays(m3.Manifold.sphere(radius, segments))


def torus(
    major: float = 1.0, minor: float = 0.35, segments: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Genus one, axis +z: undercut-free only when pulled along its axis."""
    ring = m3.CrossSection.circle(minor, segments).translate((major, 0.0))
    return _arrays(ring.revolve(segments))


def c_channel() -> tuple[np.ndarray, np.ndarray]:
    """A box with a slot cut in from +x, through y: the overhangs are undercuts along z.

    Pulled along y (the slot's axis) or x it releases cleanly.
    """
    body = m3.Manifold.cube((40.0, 20.0, 40.0), center=True)
    slot = m3.Manifold.cube((30.0, 30.0, 14.0), center=True).translate((10.0, 0.0, 0.0))
    return _arrays(body - slot)


def mushroom() -> tuple[np.ndarray, np.ndarray]:
    """A stem with a wide cap: an overhang that a plane at the cap's underside releases."""
    stem = m3.Manifold.cylinder(30.0, 8.0, 8.0, 48)
    cap = m3.Manifold.cylinder(10.0, 20.0, 16.0, 48).translate((0.0, 0.0, 29.0))
    return _arrays(stem + cap)
