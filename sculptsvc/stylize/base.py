"""The stylizer seam: the classic (weight-free) and diffusion backends both implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StylizedImage:
    """A stylized render of the subject.

    rgba: (h, w, 4) uint8, straight (not premultiplied) alpha; alpha 0 outside the subject.
    mask: (h, w) bool, the subject's silhouette; what the reconstructor inflates.
    albedo: optional (h, w, 3) uint8 colours without baked light, defined everywhere
        (bled past the silhouette); the texture to project when set, else ``rgba``.
    """

    rgba: np.ndarray
    mask: np.ndarray
    albedo: np.ndarray | None = None


class Stylizer(Protocol):
    """Turns a decoded picture into a stylized image of its main subject."""

    name: str

    def stylize(self, image: np.ndarray, *, seed: int) -> StylizedImage:
        """image: (h, w, 3|4) uint8 RGB(A). Raises ``NoSubject`` when nothing stands out."""
        ...
