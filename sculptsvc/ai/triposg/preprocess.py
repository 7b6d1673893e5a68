"""Stylized RGBA -> TripoSG's DINOv2 input, framed from our own subject mask.

Upstream frames the picture with RMBG-1.4 (not licensed for commercial use): subject cut
out, composited on white, cropped to its bounding box and padded by 10% of its longer side
to a square. We do the same from the subject mask the stylizer carries (our own
extraction), then apply the release's ``BitImageProcessor`` settings from
``feature_extractor_dinov2/preprocessor_config.json``: resize the shortest edge (PIL
bicubic), centre crop, rescale, ImageNet normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from sculptsvc.ai.framing import subject_on_background
from sculptsvc.ai.triposg.config import ImageProcessorConfig
from sculptsvc.stylize.base import StylizedImage

BACKGROUND = 1.0
"""White, as the release's inference script composites."""
PADDING_RATIO = 0.1
"""Border on each side, as a fraction of the subject's longer side."""


def framed_subject(image: StylizedImage) -> np.ndarray:
    """(S, S, 3) uint8: the subject on white, cropped and padded square."""
    rgb = subject_on_background(image, BACKGROUND)
    h, w = rgb.shape[:2]
    pad = int(max(h, w) * PADDING_RATIO)
    side = max(h, w) + 2 * pad
    canvas = np.full((side, side, 3), BACKGROUND, dtype=np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = rgb
    return np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)


def pixel_values(framed: np.ndarray, cfg: ImageProcessorConfig) -> torch.Tensor:
    """(3, H, W) float32 network input from an (S, S, 3) uint8 picture."""
    picture = Image.fromarray(framed)
    if cfg.do_resize:
        w, h = picture.size
        if cfg.size.shortest_edge is not None:
            short = cfg.size.shortest_edge
            scale = short / min(w, h)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
        else:
            size = (cfg.size.width or w, cfg.size.height or h)
        picture = picture.resize(size, Image.Resampling.BICUBIC)
    if cfg.do_center_crop:
        w, h = picture.size
        cw, ch = cfg.crop_size.width or w, cfg.crop_size.height or h
        left, top = (w - cw) // 2, (h - ch) // 2
        picture = picture.crop((left, top, left + cw, top + ch))
    array = np.asarray(picture, dtype=np.float32)
    if cfg.do_rescale:
        array = array * cfg.rescale_factor
    if cfg.do_normalize:
        array = (array - np.asarray(cfg.image_mean)) / np.asarray(cfg.image_std)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))
