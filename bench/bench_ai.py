"""AI stages on the CPU with the tiny models: seconds per image and peak RSS per stage.

    .venv/bin/python -m bench ai

Each row runs in a fresh spawned process so its peak RSS is its own (imports included).
The tiny models measure the plumbing (framing, scheduler loop, grid query, marching cubes),
not real-model quality or speed. Real-size TripoSR and TripoSG are counted in FLOPs on the
meta device (no weights, no time); set ``SCULPT_BENCH_FULL_TRIPOSR=1`` to also time a
random-initialised full-size TripoSR forward on this CPU (about a minute of 2 cores and
~3.5 GB of memory). GPU timings: ``python -m bench gpu``.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import print_table

REPEATS = 3
"""Timed runs per row after one warm-up run; the median is reported."""
TRIPOSR_RESOLUTIONS = (64, 128, 256)
TRIPOSG_TOKENS = 2048
TRIPOSG_STEPS = 50
"""The release's defaults (SCULPT_TRIPOSG_LATENT_TOKENS / _STEPS)."""
H100_PUBLISHED_S = 0.3
"""TripoSR seconds per object on an H100 (SF3D paper), for scale."""


def _picture() -> Any:
    import numpy as np

    yy, xx = np.mgrid[:256, :256]
    image = np.zeros((256, 256, 4), dtype=np.uint8)
    image[..., 0] = 190
    image[..., 1] = xx.astype(np.uint8)
    image[..., 3] = np.where(((yy - 128) / 100) ** 2 + ((xx - 128) / 70) ** 2 < 1, 255, 0)
    return image


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _diffusion_row(folder: str, steps: int) -> dict[str, object]:
    from sculptsvc.ai.diffusion import DiffusionParams, DiffusionStylizer

    stylizer = DiffusionStylizer.from_folder(Path(folder), "cpu", DiffusionParams(steps=steps))
    image = _picture()
    stylizer.stylize(image, seed=0)
    times = []
    for seed in range(REPEATS):
        started = time.perf_counter()
        stylizer.stylize(image, seed=seed)
        times.append(time.perf_counter() - started)
    return {
        "stage": "stylize",
        "model": f"tiny SD img2img {stylizer.resolution}px",
        "setting": f"{steps} steps x strength 0.5",
        "s_per_image": _median(times),
        "peak_rss_mb": _peak_rss_mb(),
        "triangles": "",
    }


def _triposr_row(folder: str, resolution: int) -> dict[str, object]:
    from sculptsvc.ai.triposr.reconstructor import TripoSRParams, TripoSRReconstructor
    from sculptsvc.stylize.base import StylizedImage

    rec = TripoSRReconstructor.from_folder(
        Path(folder), "cpu", TripoSRParams(resolution=resolution)
    )
    rgba = _picture()
    image = StylizedImage(rgba=rgba, mask=rgba[..., 3] > 0)
    mesh = rec.reconstruct(image, seed=0)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        mesh = rec.reconstruct(image, seed=0)
        times.append(time.perf_counter() - started)
    return {
        "stage": "reconstruct",
        "model": "tiny TripoSR",
        "setting": f"grid {resolution}^3",
        "s_per_image": _median(times),
        "peak_rss_mb": _peak_rss_mb(),
        "triangles": len(mesh.faces),
    }


def _full_triposr_flops_row() -> dict[str, object]:
    """FLOPs of the full-size forward (meta device) and of its 256^3 density query."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sculptsvc.ai.triposr.config import OFFICIAL_CONFIG, parse_config
    from sculptsvc.ai.triposr.weights import build_model

    config = parse_config(OFFICIAL_CONFIG)
    model = build_model(config, "meta")
    size = config.cond_image_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    forward = counter.get_total_flops()
    d = config.decoder
    per_point = 2 * (d.n_neurons * d.n_neurons * (d.n_hidden_layers - 1) + d.n_neurons)
    grid = 256**3 * per_point  # first layer factorised away (see isosurface.py)
    return {
        "stage": "reconstruct",
        "model": "TripoSR full (419M params)",
        "setting": "FLOPs only (meta device)",
        "s_per_image": f"{forward / 1e9:.0f}+{grid / 1e9:.0f} GFLOP (H100: {H100_PUBLISHED_S} s)",
        "peak_rss_mb": _peak_rss_mb(),
        "triangles": "",
    }


def _full_triposg_flops_row() -> dict[str, object]:
    """FLOPs of a full-size TripoSG order (meta device): sampling, DINOv2, SDF decoder."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sculptsvc.ai.triposg.config import OFFICIAL_CONFIG
    from sculptsvc.ai.triposg.weights import build_model

    model = build_model(OFFICIAL_CONFIG, "meta")
    meta = {"device": "meta"}

    def flops(fn: Any) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return counter.get_total_flops()

    width = OFFICIAL_CONFIG.image_encoder.hidden_size
    latents = torch.empty(1, TRIPOSG_TOKENS, OFFICIAL_CONFIG.vae.latent_channels, **meta)
    step = flops(
        lambda: model.transformer(
            torch.cat((latents, latents)),
            torch.empty(2, **meta),
            torch.empty(2, 257, width, **meta),
        )
    )
    cache = model.vae.keys_values(latents)
    per_point = flops(lambda: model.vae.sdf(cache, torch.empty(1, 4096, 3, **meta))) / 4096
    return {
        "stage": "reconstruct",
        "model": "TripoSG full (1.99B params)",
        "setting": f"FLOPs only (meta device), {TRIPOSG_TOKENS} tokens, CFG",
        "s_per_image": f"{TRIPOSG_STEPS} x {step / 1e12:.1f} TFLOP + {per_point / 1e6:.1f} "
        "MFLOP per SDF point",
        "peak_rss_mb": _peak_rss_mb(),
        "triangles": "",
    }


def _full_triposr_timed_row() -> dict[str, object]:
    import torch

    from sculptsvc.ai.triposr.config import OFFICIAL_CONFIG, parse_config
    from sculptsvc.ai.triposr.isosurface import density_grid
    from sculptsvc.ai.triposr.weights import build_model

    config = parse_config(OFFICIAL_CONFIG)
    model = build_model(config, "meta").to_empty(device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    model.image_tokenizer.image_mean.fill_(0.45)
    model.image_tokenizer.image_std.fill_(0.225)
    model.eval()
    image = torch.rand(1, 3, config.cond_image_size, config.cond_image_size)
    with torch.inference_mode():
        started = time.perf_counter()
        code = model(image)[0]
        forward = time.perf_counter() - started
        started = time.perf_counter()
        density_grid(model.decoder, code, config.renderer, 256, 1 << 18)
        grid = time.perf_counter() - started
    return {
        "stage": "reconstruct",
        "model": "TripoSR full, random init",
        "setting": "forward + grid 256^3",
        "s_per_image": f"{forward:.1f}+{grid:.1f}",
        "peak_rss_mb": _peak_rss_mb(),
        "triangles": "",
    }


def _run(fn: Any, *args: object) -> dict[str, object]:
    """Run one row in a fresh process (own peak RSS, own imports)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        from sculptsvc.ai.tiny import make_tiny_models

        paths = make_tiny_models(Path(tmp))
        rows = [_run(_diffusion_row, str(paths["diffusion"]), steps) for steps in (4, 20)]
        rows += [_run(_triposr_row, str(paths["triposr"]), r) for r in TRIPOSR_RESOLUTIONS]
    rows.append(_run(_full_triposr_flops_row))
    rows.append(_run(_full_triposg_flops_row))
    if os.environ.get("SCULPT_BENCH_FULL_TRIPOSR") == "1":
        rows.append(_run(_full_triposr_timed_row))
    print_table(f"AI stages on CPU ({os.cpu_count()} cores), median of {REPEATS}", rows)


if __name__ == "__main__":
    main()
