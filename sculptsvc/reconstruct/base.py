"""The reconstructor seam: the classic (inflation) and TripoSR backends both implement it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from sculptsvc.stylize.base import StylizedImage

ColorSource = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Colour of the surface at points: (points (n, 3) float, normals (n, 3) float) -> (n, 4) uint8.

The mesh stage bakes its UV texture by calling this for every texel's 3D position, so a
reconstructor can hand over a projected image or a colour field instead of vertex colours."""


@dataclass
class ColoredMesh:
    """A reconstruction, in the reconstructor's own units (the pipeline scales it to mm).

    vertices: (n, 3) float64; faces: (m, 3) int64.
    vertex_colors: (n, 4) uint8 or None; color_source: optional colour field (see ColorSource).
    At least one of the two colour carriers is set.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    color_source: ColorSource | None = None


class Reconstructor(Protocol):
    """Turns a stylized image into a coloured mesh of the subject."""

    name: str

    def reconstruct(self, image: StylizedImage, *, seed: int) -> ColoredMesh: ...


@runtime_checkable
class ShapeAdjustable(Protocol):
    """A reconstructor that can honour an order's shape options (relief depth, thickness)."""

    def reshaped(self, *, relief_depth: float, thickness: float) -> Reconstructor: ...
