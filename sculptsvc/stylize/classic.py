"""Weight-free stylizer: find the subject, then give it a moulded-silicone look.

1. Subject mask (:mod:`sculptsvc.stylize.subject`, shared with the diffusion stylizer):
   the shop's hint, the alpha channel, or a background model of the photo's frame seeding
   OpenCV's GrabCut; every part of the subject kept and joined. Unsure -> ``NoSubject``.
2. Silicone look: edge-preserving smoothing (bilateral), a small palette (k-means in Lab
   with a fixed seed), then a soft glossy highlight shaded from the inflated silhouette.
   The flat-coloured version (no highlight) goes out as ``albedo`` so the 3D texture does
   not carry baked light; the material's clearcoat makes the gloss there.

Everything is deterministic: seeded k-means, OpenCV's RNG reseeded before GrabCut,
single-threaded OpenCV calls. Same picture and seed -> identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.cluster.vq import kmeans2

from sculptsvc.errors import NoSubject
from sculptsvc.imaging import single_threaded_cv2
from sculptsvc.logging import get_logger
from sculptsvc.stylize.base import StylizedImage
from sculptsvc.stylize.subject import (
    CUSTOMER_ADVICE,
    SubjectHint,
    SubjectParams,
    clean_mask,
    find_subject,
    has_informative_alpha,
    to_lab,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class ClassicStylizeParams:
    """Tunables of the classic stylizer."""

    work_size: int = 512
    """Longest side the picture is processed at (and the texture's resolution)."""
    margin_fraction: float = 0.04
    """Empty border kept around the subject when cropping to it."""
    rim_px: int = 3
    """Outline pixels whose colour is replaced by the nearest colour further inside: the
    outline mixes in background (anti-aliasing, a mask a pixel too wide) and would show
    as a pale rim on the sculpture."""
    bilateral_passes: int = 2
    bilateral_diameter: int = 9
    bilateral_sigma_color: float = 30.0
    bilateral_sigma_space: float = 7.0
    palette_size: int = 10
    """Colours of the reduced palette: silicone is cast in a few pigmented colours."""
    palette_samples: int = 20_000
    """Pixels the k-means is fitted on (seeded sample); all pixels are then assigned."""
    palette_blend: float = 0.8
    """0 keeps the smoothed colours, 1 snaps fully to the palette."""
    palette_lightness_weight: float = 0.6
    """Weight of Lab lightness against chroma when clustering: below 1, baked shading of
    one pigment weighs less than a change of pigment."""
    palette_merge_distance: float = 14.0
    """Palette colours closer than this (weighted Lab, average linkage) become one pigment,
    so a single-colour subject's baked shading does not turn into bands (the 3D shape
    makes the shading on the sculpture)."""
    highlight_strength: float = 0.45
    highlight_shininess: float = 40.0
    light_direction: tuple[float, float, float] = (-0.45, 0.55, 0.70)
    """Key light (x right, y up, z to the viewer), upper left as in product photos."""
    subject: SubjectParams = field(default_factory=SubjectParams)
    """Subject extraction (:mod:`sculptsvc.stylize.subject`)."""


class ClassicStylizer:
    """The ``Stylizer`` that needs no weights and no GPU (see the module docstring)."""

    name = "classic"

    def __init__(self, params: ClassicStylizeParams | None = None) -> None:
        self.params = params or ClassicStylizeParams()

    def stylize(
        self, image: np.ndarray, *, seed: int, hint: SubjectHint | None = None
    ) -> StylizedImage:
        """image: (h, w, 3|4) uint8 RGB(A). Raises ``NoSubject`` when nothing stands out."""
        return stylize_classic(image, seed=seed, params=self.params, hint=hint)


def stylize_classic(
    image: np.ndarray,
    *,
    seed: int,
    params: ClassicStylizeParams | None = None,
    hint: SubjectHint | None = None,
) -> StylizedImage:
    """Subject mask, crop to it, silicone look; see the module docstring for the steps."""
    p = params or ClassicStylizeParams()
    _check_image(image)
    with single_threaded_cv2():
        # 1. Find the subject on a small copy and crop the full picture to it, so small
        #    subjects still get the whole texture resolution.
        mask_small, scale = find_subject(image, params=p.subject, hint=hint)
        crop = _crop_box(mask_small, scale, image.shape[:2], p.margin_fraction)
        rgb, subject_weight = _crop_and_resize(image, mask_small, scale, crop, p.work_size)
        # 2. Clean the mask at the final resolution.
        mask = clean_mask(subject_weight >= 0.5, p.subject, reference_size=p.work_size)
        if not mask.any():
            raise NoSubject(
                f"The subject is too thin or too small to sculpt. {CUSTOMER_ADVICE}",
                reason="the subject vanished when cleaned",
            )
        # 3. Silicone look.
        albedo = silicone_albedo(rgb, mask, seed=seed, params=p)
        lit = add_highlight(albedo, mask, params=p)
    rgba = np.dstack([lit, np.where(mask, 255, 0).astype(np.uint8)])
    rgba[~mask, :3] = 0
    log.debug(
        "stylized",
        width=rgba.shape[1],
        height=rgba.shape[0],
        subject_fraction=round(float(mask.mean()), 4),
    )
    return StylizedImage(rgba=rgba, mask=mask, albedo=albedo)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected (h, w, 3|4) uint8, got {image.shape} {image.dtype}")


# --- 1. Subject (found by sculptsvc.stylize.subject), crop ---------------------------------


def _crop_box(
    mask_small: np.ndarray, scale: float, shape: tuple[int, int], margin: float
) -> tuple[int, int, int, int]:
    """Square-free crop (top, bottom, left, right) in original pixels around the subject."""
    rows = np.flatnonzero(mask_small.any(axis=1))
    cols = np.flatnonzero(mask_small.any(axis=0))
    top, bottom = rows[0] / scale, (rows[-1] + 1) / scale
    left, right = cols[0] / scale, (cols[-1] + 1) / scale
    pad = margin * max(bottom - top, right - left)
    return (
        int(np.floor(top - pad)),
        int(np.ceil(bottom + pad)),
        int(np.floor(left - pad)),
        int(np.ceil(right + pad)),
    )


def _crop_and_resize(
    image: np.ndarray,
    mask_small: np.ndarray,
    scale: float,
    box: tuple[int, int, int, int],
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (padding with the edge where the box leaves the picture), resize to ``size``.

    Returns the RGB crop and the subject weight in [0, 1] at the same size: the alpha
    channel when it is informative, else the upsampled analysis mask.
    """
    top, bottom, left, right = box
    h, w = image.shape[:2]
    pad = ((max(0, -top), max(0, bottom - h)), (max(0, -left), max(0, right - w)))
    rgb = np.pad(image[..., :3], (*pad, (0, 0)), mode="edge")
    oy, ox = pad[0][0], pad[1][0]
    rgb = rgb[top + oy : bottom + oy, left + ox : right + ox]
    full_mask = cv2.resize(mask_small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if has_informative_alpha(image):
        # Keep only the alpha of the main subject found at analysis size.
        alpha = image[..., 3].astype(np.float32) / 255.0
        near_subject = cv2.dilate(
            (full_mask > 0.01).astype(np.uint8), np.ones((5, 5), np.uint8)
        ).astype(bool)
        weight_full = np.where(near_subject, alpha, 0.0).astype(np.float32)
    else:
        weight_full = full_mask
    weight = np.pad(weight_full, pad, mode="constant")[
        top + oy : bottom + oy, left + ox : right + ox
    ]
    ch, cw = rgb.shape[:2]
    factor = size / max(ch, cw)
    new_size = (max(1, round(cw * factor)), max(1, round(ch * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    rgb = np.clip(cv2.resize(np.ascontiguousarray(rgb), new_size, interpolation=interp), 0, 255)
    weight = cv2.resize(np.ascontiguousarray(weight), new_size, interpolation=cv2.INTER_LINEAR)
    return rgb.astype(np.uint8), weight


# --- 2. Silicone look ----------------------------------------------------------------------


def bleed_colors(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy the nearest subject colour into every background pixel.

    Filters then never mix in the background, and texture lookups that land just outside
    the silhouette (the sculpture's rounded sides) get the subject's edge colour.
    """
    if mask.all():
        return rgb.copy()
    iy, ix = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return rgb[iy, ix]


def silicone_albedo(
    rgb: np.ndarray, mask: np.ndarray, *, seed: int, params: ClassicStylizeParams | None = None
) -> np.ndarray:
    """Flat pigment colours: bilateral smoothing, then a seeded k-means palette in Lab.

    Returns (h, w, 3) uint8, defined everywhere (bled past the silhouette).
    """
    p = params or ClassicStylizeParams()
    core = ndimage.binary_erosion(mask, iterations=p.rim_px) if p.rim_px > 0 else mask
    smooth = bleed_colors(rgb, core if core.sum() >= 0.25 * mask.sum() else mask)
    for _ in range(p.bilateral_passes):
        smooth = cv2.bilateralFilter(
            smooth, p.bilateral_diameter, p.bilateral_sigma_color, p.bilateral_sigma_space
        )
    lab = to_lab(smooth)
    weights = np.array([p.palette_lightness_weight, 1.0, 1.0], dtype=np.float32)
    subject_lab = (lab[mask] * weights).astype(np.float64)
    rng = np.random.default_rng(seed)
    if len(subject_lab) > p.palette_samples:
        subject_lab = subject_lab[np.sort(rng.choice(len(subject_lab), p.palette_samples, False))]
    unique = np.unique(np.round(subject_lab, 1), axis=0)
    if len(unique) <= p.palette_size:
        palette = unique
    else:
        palette, labels = kmeans2(subject_lab, p.palette_size, seed=rng, minit="++", iter=20)
        palette = _merge_close_colours(palette, labels, p.palette_merge_distance)
    flat = lab.reshape(-1, 3) * weights
    labels = np.argmin(
        ((flat[:, None, :] - palette[None, :, :].astype(np.float32)) ** 2).sum(-1), axis=1
    )
    quantised = (palette.astype(np.float32) / weights)[labels].reshape(lab.shape)
    mixed = p.palette_blend * quantised + (1.0 - p.palette_blend) * lab
    out = cv2.cvtColor(mixed.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _merge_close_colours(palette: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """Merge palette entries closer than ``distance`` (average linkage), weighted by use."""
    counts = np.bincount(labels, minlength=len(palette)).astype(np.float64)
    used = counts > 0
    palette, counts = palette[used], counts[used]
    if len(palette) < 2 or distance <= 0:
        return palette
    groups = fcluster(linkage(palette, method="average"), t=distance, criterion="distance")
    merged = [
        np.average(palette[groups == g], axis=0, weights=counts[groups == g])
        for g in np.unique(groups)
    ]
    return np.asarray(merged)


def add_highlight(
    albedo: np.ndarray, mask: np.ndarray, *, params: ClassicStylizeParams | None = None
) -> np.ndarray:
    """A soft specular highlight shaded from the inflated silhouette (Blinn-Phong)."""
    p = params or ClassicStylizeParams()
    scale = max(mask.shape) / 4.0
    height = np.sqrt(ndimage.distance_transform_edt(mask) * scale)
    height = ndimage.gaussian_filter(height, max(1.0, max(mask.shape) / 128))
    gy, gx = np.gradient(height)
    # Image rows grow downwards; the normal's y points up.
    normals = np.dstack([-gx, gy, np.ones_like(height)])
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    light = np.asarray(p.light_direction, dtype=np.float64)
    half = light / np.linalg.norm(light) + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normals @ half, 0.0, 1.0) ** p.highlight_shininess
    spec = (p.highlight_strength * spec * mask)[..., None]
    lit = albedo.astype(np.float64) * (1.0 - spec) + 255.0 * spec
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)
