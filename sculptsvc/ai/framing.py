"""The subject of a stylized image, cut out by its own mask and composited on a flat colour:
the first step of both reconstructors' framing (each then pads it its own way)."""

from __future__ import annotations

import numpy as np

from sculptsvc.errors import NoSubject
from sculptsvc.stylize.base import StylizedImage


def subject_on_background(image: StylizedImage, background: float) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: the mask's bounding box, alpha-composited on
    ``background`` (alpha is the image's own, limited to the mask, so soft edges stay).
    Raises ``NoSubject`` for an empty mask."""
    mask = np.asarray(image.mask, dtype=bool)
    if not mask.any():
        raise NoSubject("the stylized image has an empty subject mask")
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    rgba = image.rgba[top:bottom, left:right].astype(np.float32) / 255.0
    alpha = rgba[..., 3:4] * mask[top:bottom, left:right, None]
    return rgba[..., :3] * alpha + background * (1.0 - alpha)
