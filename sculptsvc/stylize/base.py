"""The stylizer seam: the classic (weight-free) and diffusion backends both implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sculptsvc.stylize.subject import SubjectHint


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

    def stylize(
        self, image: np.ndarray, *, seed: int, hint: SubjectHint | None = None
    ) -> StylizedImage:
        """image: (h, w, 3|4) uint8 RGB(A). Raises ``NoSubject`` when nothing stands out.

        ``hint``: what the shop knows about the subject (a mask or a box); honoured.
        """
        ...
