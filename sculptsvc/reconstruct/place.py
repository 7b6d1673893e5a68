"""From the reconstructor's units to millimetres: the one place the sculpture is scaled.

The mesh stage and the mold take the placed mesh as it is (the mold is told the part is in
millimetres already), so ``size_mm`` is applied exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sculptsvc.reconstruct.base import ColoredMesh, ColorSource


@dataclass(frozen=True)
class PlacedColorSource:
    """A ``ColorSource`` of the reconstructor's units, read through the placement:
    ``source_point = (point - offset) / scale``. Picklable when the source is."""

    source: ColorSource
    scale: float
    offset: tuple[float, float, float]

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        local = (np.asarray(points, dtype=np.float64) - np.asarray(self.offset)) / self.scale
        return self.source(local, normals)


def place_in_mm(mesh: ColoredMesh, size_mm: float) -> ColoredMesh:
    """Scale so the longest side is ``size_mm``, stand on y = 0, centre x and z."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    scale = size_mm / float((hi - lo).max())
    centre = 0.5 * (lo + hi)
    anchor = np.array([centre[0], lo[1], centre[2]])
    offset = -anchor * scale
    placed = vertices * scale + offset
    source = (
        PlacedColorSource(mesh.color_source, scale, tuple(float(v) for v in offset))
        if mesh.color_source is not None
        else None
    )
    return ColoredMesh(
        vertices=placed,
        faces=np.asarray(mesh.faces, dtype=np.int64),
        vertex_colors=mesh.vertex_colors,
        color_source=source,
    )
