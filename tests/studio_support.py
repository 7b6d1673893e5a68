"""The Studio as its own process (`sculpt studio`), Debian's Chromium through Playwright, and
what a screenshot of a 3D view shows."""

from __future__ import annotations

import colorsys
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sculptsvc.settings import Settings
from tests.service_support import REPO_ROOT, free_port, settings_env, stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"]
"""Software WebGL in headless Debian Chromium (shared FIELD-NOTES)."""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: scripts/bootstrap installs Debian's chromium"
    if not (REPO_ROOT / "tools" / "node_modules" / "@google" / "model-viewer").is_dir():
        return "tools/node_modules/@google/model-viewer missing: scripts/bootstrap runs npm"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright (PyPI) not installed: scripts/bootstrap installs .[dev]"
    return None


class StudioProcess:
    """`sculpt studio` on a free port, with ``tokens`` ({name: token}) for the QA actions."""

    def __init__(self, settings: Settings, log_path: Path, tokens: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in settings_env(settings).items() if k != "SCULPT_STUDIO_TOKENS"}
        self.env = {
            **os.environ,
            **env,
            "SCULPT_STUDIO_PORT": str(self.port),
            "SCULPT_STUDIO_TOKENS": json.dumps(tokens),
            "SCULPT_STUDIO_ASSETS_DIR": str(REPO_ROOT / "tools" / "node_modules"),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> StudioProcess:
        fh = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sculptsvc.cli", "studio"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"studio exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if json.loads(r.read())["pool"]:
                        return self
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"studio not up in {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class PixelStats:
    """What a screenshot of a 3D view shows, against its background (the commonest border
    colour)."""

    foreground_fraction: float
    hue_deg: float | None  # mean hue of the saturated foreground pixels
    saturated_fraction: float  # share of the foreground that is saturated


def pixel_stats(png: bytes, *, tolerance: int = 24) -> PixelStats:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    values, counts = np.unique(border, axis=0, return_counts=True)
    background = values[counts.argmax()]  # the most common border colour
    foreground = np.abs(rgb - background).max(axis=2) > tolerance
    pixels = rgb[foreground] / 255.0
    if len(pixels) == 0:
        return PixelStats(0.0, None, 0.0)
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels[:: max(1, len(pixels) // 4000)]])
    saturated = hsv[(hsv[:, 1] > 0.35) & (hsv[:, 2] > 0.15)]
    hue = None
    if len(saturated):
        angles = saturated[:, 0] * 2 * np.pi  # circular mean (red wraps around 0)
        hue = float(np.degrees(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360)
    return PixelStats(float(foreground.mean()), hue, len(saturated) / len(hsv))


def hue_of(hex_color: str) -> float:
    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)
