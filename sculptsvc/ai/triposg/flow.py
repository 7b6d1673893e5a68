"""Rectified-flow sampling of TripoSG latents (Euler steps, classifier-free guidance).

The release's scheduler: noise levels ``sigma_i = 1 - i / N`` (i = 0 .. N-1), optionally
time-shifted ``s sigma / (1 + (s - 1) sigma)``, then 0; the network sees ``t = 1000 sigma``
and predicts a velocity ``v``; one step is ``x <- x + (sigma_i - sigma_{i+1}) v`` in float32.
Guidance runs the unconditional branch on all-zero image tokens, as the release does:
``v = v_uncond + g (v_cond - v_uncond)`` when ``g > 1``.

The starting noise comes from a ``torch.Generator`` seeded with the order's seed on the
device it is drawn on, so a replay on the same hardware and library versions repeats the
shape exactly.
"""

from __future__ import annotations

import torch

from sculptsvc.ai.triposg.config import SchedulerConfig
from sculptsvc.ai.triposg.model import TripoSGTransformer


def sigmas(cfg: SchedulerConfig, steps: int) -> torch.Tensor:
    """(steps + 1,) float32 noise levels from 1 down to 0."""
    if steps < 1:
        raise ValueError("at least one flow step is needed")
    s = 1.0 - torch.arange(steps, dtype=torch.float64) / steps
    s = cfg.shift * s / (1.0 + (cfg.shift - 1.0) * s)
    return torch.cat((s, torch.zeros(1, dtype=torch.float64))).float()


@torch.inference_mode()
def sample_latents(
    transformer: TripoSGTransformer,
    scheduler: SchedulerConfig,
    image_tokens: torch.Tensor,
    *,
    steps: int,
    guidance_scale: float,
    num_tokens: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Latents (B, num_tokens, C) for image tokens (B, S, D) (model dtype and device)."""
    batch = image_tokens.shape[0]
    device, dtype = image_tokens.device, image_tokens.dtype
    channels = transformer.cfg.in_channels
    latents = torch.randn(
        (batch, num_tokens, channels), generator=generator, device=device, dtype=dtype
    )
    guided = guidance_scale > 1.0
    context = torch.cat((torch.zeros_like(image_tokens), image_tokens)) if guided else image_tokens
    levels = sigmas(scheduler, steps).to(device)
    for i in range(steps):
        x = torch.cat((latents, latents)) if guided else latents
        t = (levels[i] * scheduler.num_train_timesteps).expand(x.shape[0])
        velocity = transformer(x, t, context)
        if guided:
            uncond, cond = velocity.chunk(2)
            velocity = uncond + guidance_scale * (cond - uncond)
        step = (levels[i] - levels[i + 1]).float()
        latents = (latents.float() + step * velocity.float()).to(velocity.dtype)
    return latents
