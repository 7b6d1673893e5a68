"""Draw the demo picture ``samples/sample.png``: a glossy rubber duck on a plain backdrop.

Generated in code (no third-party artwork, nothing downloaded) and deterministic, so the
committed PNG can always be re-made: ``python samples/make_sample.py``. It is an RGB
picture without alpha on purpose: the demo exercises background estimation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 512
SUPERSAMPLE = 3
BACKDROP = (226, 232, 240)
YELLOW = (250, 200, 40)
ORANGE = (240, 110, 30)
DARK = (30, 28, 36)
WHITE = (255, 255, 255)


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0
) -> np.ndarray:
    """Implicit ellipse value: < 1 inside."""
    a = np.radians(angle_deg)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(a) + dy * np.sin(a)
    v = -dx * np.sin(a) + dy * np.cos(a)
    return (u / rx) ** 2 + (v / ry) ** 2


def _shade(base: tuple[int, int, int], value: np.ndarray) -> np.ndarray:
    """Dome shading: lit from the upper left, darker towards the rim."""
    rim = np.clip(value, 0.0, 1.0)
    light = 1.08 - 0.35 * rim
    return np.clip(np.asarray(base, float)[None, None, :] * light[..., None], 0, 255)


def draw(size: int = SIZE) -> np.ndarray:
    n = size * SUPERSAMPLE
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / SUPERSAMPLE * (512.0 / size)
    img = np.empty((n, n, 3), float)
    # Backdrop: soft vertical gradient, as in a product photo.
    img[:] = np.asarray(BACKDROP, float) * (1.0 - 0.06 * (y / 512.0))[..., None]

    body = _ellipse(x, y, 275, 345, 175, 112)
    tail = _ellipse(x, y, 420, 262, 62, 38, angle_deg=-35)
    head = _ellipse(x, y, 200, 185, 98, 94)
    for region in (np.minimum(body, tail), head):
        inside = region < 1.0
        img[inside] = _shade(YELLOW, region)[inside]
    wing = _ellipse(x, y, 300, 340, 95, 55, angle_deg=-12)
    inside = wing < 1.0
    img[inside] = _shade((235, 180, 30), 0.6 + 0.4 * wing)[inside]
    beak_top = _ellipse(x, y, 104, 206, 52, 20, angle_deg=8)
    beak_low = _ellipse(x, y, 112, 226, 44, 14, angle_deg=-6)
    for beak in (beak_low, beak_top):
        inside = beak < 1.0
        img[inside] = _shade(ORANGE, beak)[inside]
    eye = _ellipse(x, y, 185, 160, 17, 21)
    img[eye < 1.0] = DARK
    glint = _ellipse(x, y, 179, 152, 6, 7)
    img[glint < 1.0] = WHITE
    # Specular highlights of a glossy toy.
    for cx, cy, rx, ry in ((165, 125, 30, 16), (210, 285, 55, 14)):
        spot = _ellipse(x, y, cx, cy, rx, ry, angle_deg=-20)
        weight = np.clip(1.0 - spot, 0.0, 1.0)[..., None] ** 1.5 * 0.75
        img = img * (1 - weight) + 255.0 * weight
    small = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("sample.png")
    Image.fromarray(draw()).save(out, format="PNG", optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
