"""Stylized RGBA -> TripoSR's conditioning image.

TripoSR was trained on renders with the object centred, its longer side filling 0.85 of a
square frame, on a 0.5 grey background. We rebuild exactly that from the subject mask the
stylizer carried over, so the network sees what it was trained on whatever the order's
framing was.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sculptsvc.ai.framing import subject_on_background
from sculptsvc.stylize.base import StylizedImage

BACKGROUND_GREY = 0.5


def conditioning_image(image: StylizedImage, size: int, foreground_ratio: float) -> torch.Tensor:
    """(3, size, size) float32 in [0, 1]: subject centred on grey, longer side = ratio x size.

    Alpha is the stylized image's own alpha, limited to the mask (soft edges kept).
    Raises ``NoSubject`` for an empty mask.
    """
    rgb = subject_on_background(image, BACKGROUND_GREY)

    height, width = rgb.shape[:2]
    side = int(np.ceil(max(height, width) / foreground_ratio))
    canvas = np.full((side, side, 3), BACKGROUND_GREY, dtype=np.float32)
    y0, x0 = (side - height) // 2, (side - width) // 2
    canvas[y0 : y0 + height, x0 : x0 + width] = rgb

    tensor = torch.from_numpy(canvas).permute(2, 0, 1)[None]
    resized = F.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0].clamp(0.0, 1.0)
