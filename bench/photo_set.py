"""A measured photo set: subjects with an exact mask composited onto real photographs.

Nothing is stored: every case is generated when the benchmark runs, from

- subjects: the corpus renders that carry an alpha channel (``../shared/corpus/images``,
  used as they are) and subjects drawn here (multi-part text, a thin mast, a mug with a
  handle);
- backgrounds: the photographs bundled with scikit-image (a project dependency; public
  domain or CC0/CC-BY as listed in ``skimage/data/README.txt``): scene crops without their
  own main object (a wooden table, a studio wall, a launch site's night sky, an
  out-of-focus room), textures (a stained micrograph, grass, gravel, brick, the Hubble deep
  field), a plain gradient sky; and three whole photographs whose own subject (a cup, an
  astronaut, a cat) competes with ours (``clutter``: correct or ``no_subject`` expected).

The true mask is the subject's alpha after compositing (>= 0.5), so it is exact. Each case
names what makes it hard: ``thin`` (tall and thin), ``text`` (separate letters), ``low``
(subject colours pulled towards the background), ``busy`` (textured background),
``frame`` (the subject is cut by the picture's edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CANVAS = (384, 384)  # (h, w) of every composite


@dataclass(frozen=True)
class PhotoCase:
    name: str
    kinds: tuple[str, ...]
    image: np.ndarray  # (h, w, 3) uint8, no alpha: the photo path is measured
    truth: np.ndarray  # (h, w) bool


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


def _fit(photo: np.ndarray, shape: tuple[int, int] = CANVAS) -> np.ndarray:
    """Centre-crop to the canvas aspect, then resize."""
    h, w = photo.shape[:2]
    target = shape[1] / shape[0]
    if w / h > target:
        cw = round(h * target)
        photo = photo[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = round(w / target)
        photo = photo[(h - ch) // 2 : (h - ch) // 2 + ch]
    return cv2.resize(photo, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _gradient_sky(shape: tuple[int, int] = CANVAS) -> np.ndarray:
    t = np.linspace(0.0, 1.0, shape[0])[:, None, None]
    sky = (1 - t) * np.array([35.0, 85.0, 185.0]) + t * np.array([210.0, 222.0, 236.0])
    sky = sky + np.zeros((1, shape[1], 1))
    sky += np.random.default_rng(7).normal(0, 2.0, sky.shape)
    return np.clip(sky, 0, 255).astype(np.uint8)


def backgrounds() -> dict[str, np.ndarray]:
    """Scenes behind a subject: crops of the photographs without their own main object
    (a wooden table, a studio wall, a launch site's sky with its towers), textures, and
    whole photographs whose own subject competes with ours (``clutter-*``)."""
    import skimage.data as data

    coffee, chelsea, rocket = data.coffee(), data.chelsea(), data.rocket()
    astronaut = data.astronaut()
    crops = {
        "table": coffee[:, 420:600],  # the wooden table beside the cup
        "dark-table": coffee[0:120, 0:200],  # the table's corner in shadow
        "launch-sky": rocket[0:250, 380:640],  # night sky with launch towers at the edge
        "night-sky": rocket[0:200, 160:320],  # night sky, a mast at the edge
        "blur": chelsea[0:150, 330:451],  # the out-of-focus room behind the cat
        "ihc": data.immunohistochemistry(),
        "hubble": data.hubble_deep_field(),
        "grass": data.grass(),
        "gravel": data.gravel(),
        "brick": data.brick(),
        "clutter-coffee": coffee,
        "clutter-astronaut": astronaut,
        "clutter-cat": chelsea,
    }
    out = {name: _fit(_rgb(photo)) for name, photo in crops.items()}
    out["sky"] = _gradient_sky()
    return out


# --- subjects: (h, w, 4) uint8 RGBA ---------------------------------------------------------


def _shaded(mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    h, w = mask.shape
    shade = 0.7 + 0.3 * np.linspace(1, 0, h)[:, None] * np.linspace(0.6, 1, w)[None, :]
    rgb = np.asarray(colour, float)[None, None, :] * shade[..., None]
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.7) * 255
    return np.dstack([np.clip(rgb, 0, 255), alpha]).astype(np.uint8)


def text_subject(text: str, colour: tuple[int, int, int]) -> np.ndarray:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, 3.0, 12)
    canvas = np.zeros((th + base + 40, tw + 40), np.uint8)
    cv2.putText(canvas, text, (20, th + 20), cv2.FONT_HERSHEY_DUPLEX, 3.0, 255, 12, cv2.LINE_AA)
    return _shaded(canvas >= 128, colour)


def mast_subject(colour: tuple[int, int, int]) -> np.ndarray:
    h, w = 400, 80
    y, x = np.mgrid[0:h, 0:w]
    mast = (np.abs(x - w / 2) < 6) & (y > 60)
    lamp = ((x - w / 2) / 30.0) ** 2 + ((y - 50) / 22.0) ** 2 < 1
    base = (np.abs(x - w / 2) < 20) & (y > h - 24)
    return _shaded(mast | lamp | base, colour)


def mug_subject(colour: tuple[int, int, int]) -> np.ndarray:
    h, w = 240, 300
    y, x = np.mgrid[0:h, 0:w]
    body = (np.abs(x - 120) < 90) & (np.abs(y - 120) < 100)
    ring = np.hypot(x - 215, y - 115)
    handle = (ring < 62) & (ring > 38) & (x > 200)
    return _shaded(body | handle, colour)


def corpus_subjects(corpus: Path) -> dict[str, np.ndarray]:
    """The corpus renders whose alpha channel cuts out the subject."""
    out = {}
    for name in ("chair", "cow", "fandisk", "homer", "spot", "stanford-bunny", "suzanne"):
        path = corpus / "images" / f"{name}.png"
        if path.exists():
            rgba = np.asarray(Image.open(path).convert("RGBA"))
            ys, xs = np.nonzero(rgba[..., 3] >= 128)
            out[name] = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    teapot = corpus / "images" / "teapot.png"
    if teapot.exists():
        rgba = np.asarray(Image.open(teapot).convert("RGBA"))
        ys, xs = np.nonzero(rgba[..., 3] >= 128)
        out["teapot"] = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return out


# --- compositing ----------------------------------------------------------------------------


def composite(
    subject: np.ndarray,
    background: np.ndarray,
    *,
    height: float,
    centre: tuple[float, float] = (0.5, 0.5),
    contrast: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Subject scaled to ``height`` x the canvas height (or its width to fit), centred at
    ``centre`` (fractions of the canvas; may push it past an edge); ``contrast`` < 1 pulls
    its colours towards the background it covers."""
    h, w = background.shape[:2]
    sh, sw = subject.shape[:2]
    factor = min(height * h / sh, 0.9 * w / sw)
    size = (max(1, round(sw * factor)), max(1, round(sh * factor)))
    scaled = cv2.resize(subject, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    layer = np.zeros((h, w, 4))
    top = round(centre[1] * h - size[1] / 2)
    left = round(centre[0] * w - size[0] / 2)
    y0, y1 = max(0, top), min(h, top + size[1])
    x0, x1 = max(0, left), min(w, left + size[0])
    layer[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]
    alpha = layer[..., 3:] / 255.0
    bg = background.astype(np.float64)
    fg = layer[..., :3]
    if contrast < 1.0:
        covered = alpha[..., 0] > 0.5
        mean = bg[covered].mean(axis=0) if covered.any() else bg.mean(axis=(0, 1))
        fg = contrast * fg + (1 - contrast) * mean
    image = fg * alpha + bg * (1 - alpha)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), alpha[..., 0] >= 0.5


def photo_cases(corpus: Path) -> list[PhotoCase]:
    """The set: every case deterministic (fixed placements, no randomness)."""
    bgs = backgrounds()
    subjects = corpus_subjects(corpus)
    subjects["text-sculpt"] = text_subject("SCULPT", (200, 40, 50))
    subjects["text-hi-5"] = text_subject("HI 5", (250, 200, 40))
    subjects["mast"] = mast_subject((60, 60, 70))
    subjects["mug"] = mug_subject((40, 110, 200))
    plan: list[tuple[str, str, str, dict, tuple[str, ...]]] = [
        # (case, subject, background, placement, kinds)
        ("cow-table", "cow", "table", {"height": 0.55}, ("product",)),
        ("spot-night", "spot", "night-sky", {"height": 0.6}, ("product",)),
        ("bunny-grass", "stanford-bunny", "grass", {"height": 0.6}, ("busy",)),
        ("homer-dark-table", "homer", "dark-table", {"height": 0.75}, ("limbs",)),
        ("chair-brick", "chair", "brick", {"height": 0.7}, ("busy", "legs")),
        ("suzanne-ihc", "suzanne", "ihc", {"height": 0.55}, ("busy",)),
        ("teapot-gravel", "teapot", "gravel", {"height": 0.5}, ("busy", "handle")),
        ("fandisk-hubble", "fandisk", "hubble", {"height": 0.6}, ("busy",)),
        ("mast-sky", "mast", "sky", {"height": 0.8}, ("thin",)),
        ("mast-launch-sky", "mast", "launch-sky", {"height": 0.8}, ("thin", "busy")),
        ("mast-sky-frame", "mast", "sky", {"height": 0.9, "centre": (0.5, 0.6)}, ("thin", "frame")),
        ("mast-table", "mast", "table", {"height": 0.85}, ("thin",)),
        ("text-table", "text-sculpt", "table", {"height": 0.3}, ("text",)),
        ("text-grass", "text-sculpt", "grass", {"height": 0.3}, ("text", "busy")),
        ("text-sky", "text-hi-5", "sky", {"height": 0.35}, ("text",)),
        ("text-brick", "text-hi-5", "brick", {"height": 0.35}, ("text", "busy")),
        ("cow-blur-low", "cow", "blur", {"height": 0.55, "contrast": 0.45}, ("low",)),
        ("mug-gravel-low", "mug", "gravel", {"height": 0.5, "contrast": 0.45}, ("low", "handle")),
        ("spot-sky-low", "spot", "sky", {"height": 0.5, "contrast": 0.45}, ("low",)),
        (
            "homer-launch-frame",
            "homer",
            "launch-sky",
            {"height": 0.9, "centre": (0.5, 0.62)},
            ("frame", "limbs"),
        ),
        (
            "chair-table-frame",
            "chair",
            "table",
            {"height": 0.8, "centre": (0.5, 0.68)},
            ("frame", "legs"),
        ),
        (
            "bunny-ihc-frame",
            "stanford-bunny",
            "ihc",
            {"height": 0.6, "centre": (0.2, 0.5)},
            ("frame", "busy"),
        ),
        ("mug-blur", "mug", "blur", {"height": 0.5}, ("handle",)),
        ("suzanne-sky", "suzanne", "sky", {"height": 0.5}, ("product",)),
        (
            "cow-grass-frame",
            "cow",
            "grass",
            {"height": 0.6, "centre": (0.75, 0.5)},
            ("frame", "busy"),
        ),
        ("teapot-night", "teapot", "night-sky", {"height": 0.45}, ("product", "handle")),
        ("cow-coffee-clutter", "cow", "clutter-coffee", {"height": 0.55}, ("clutter",)),
        ("mug-astronaut-clutter", "mug", "clutter-astronaut", {"height": 0.45}, ("clutter",)),
        ("spot-cat-clutter", "spot", "clutter-cat", {"height": 0.5}, ("clutter",)),
    ]
    cases = []
    for name, subject, background, placement, kinds in plan:
        if subject not in subjects:
            continue  # a corpus subject while the corpus is absent
        image, truth = composite(subjects[subject], bgs[background], **placement)
        cases.append(PhotoCase(name, kinds, image, truth))
    return cases
