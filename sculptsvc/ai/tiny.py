"""Tiny random-initialised models in the real on-disk formats (no downloads, seconds on a CPU).

    python -m sculptsvc.ai.tiny OUT_DIR      (also: scripts/make-tiny-models OUT_DIR)

writes ``OUT_DIR/diffusion`` (a diffusers Stable Diffusion folder: tiny UNet2DConditionModel,
AutoencoderKL, CLIPTextModel, a CLIPTokenizer on a locally written byte-level vocabulary, a
DDIM scheduler, ``model_index.json``), ``OUT_DIR/triposr`` (``config.yaml`` +
``model.ckpt`` + ``model.safetensors``) and ``OUT_DIR/triposg`` (the TripoSG release layout:
``model_index.json``, ``transformer/``, ``vae/``, ``image_encoder_dinov2/``,
``feature_extractor_dinov2/``, ``scheduler/``). Tests use them, and operators can try the AI
path end to end without real weights (the outputs are meaningless, the plumbing is real).

A random decoder gives random density (TripoSR) or SDF (TripoSG), so isosurfaces would be
noise or empty. The tiny models therefore have hand-set decoders whose surface, for any
picture, is a smooth blob (TripoSR: radius ``blob_radius``; TripoSG: the level set
``cos x + cos y + cos z = 2 + cos r``, nearly a sphere of radius r), nudged a little by the
random rest of the network: a deterministic, closed, single-piece surface through the real
code path.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sculptsvc.ai.triposg.config import (
    Dinov2Config,
    ImageProcessorConfig,
    SchedulerConfig,
    Size,
    TransformerConfig,
    TripoSGConfig,
    VAEConfig,
)
from sculptsvc.ai.triposg.model import TripoSGModel
from sculptsvc.ai.triposg.weights import save_folder as save_triposg_folder
from sculptsvc.ai.triposr.config import EXPECTED_CLASSES, TripoSRConfig, parse_config
from sculptsvc.ai.triposr.model import TripoSRModel
from sculptsvc.ai.triposr.weights import save_folder

DEFAULT_THRESHOLD = 25.0
"""TripoSRParams' default isosurface density; the tiny blob is fitted to cross it."""


@dataclass(frozen=True)
class TinyTripoSRSpec:
    """Sizes of the tiny TripoSR and the blob it is set to produce."""

    cond_image_size: int = 64
    patch_size: int = 8
    vit_hidden: int = 32
    vit_layers: int = 2
    vit_heads: int = 2
    plane_size: int = 8
    width: int = 32
    heads: int = 2
    head_dim: int = 16
    layers: int = 2
    norm_groups: int = 8
    plane_channels: int = 8
    mlp_width: int = 32
    mlp_layers: int = 3
    radius: float = 0.87
    blob_radius: float = 0.5
    """Radius of the isosurface in model units (the bounding box is +-radius)."""
    blob_slope: float = 8.0
    """Raw density change per unit of squared normalised distance: how crisp the surface is."""
    linear_bias: float = 10.0
    """Offset that keeps SiLU in its linear range (SiLU(z) ~ z for z >> 1)."""
    image_influence: float = 0.02
    """Scale of the backbone's output projection: the picture nudges the blob, never breaks it."""
    seed: int = 0


def tiny_triposr_config(spec: TinyTripoSRSpec) -> TripoSRConfig:
    return parse_config(
        {
            "cond_image_size": spec.cond_image_size,
            "image_tokenizer_cls": EXPECTED_CLASSES["image_tokenizer_cls"],
            "image_tokenizer": {
                "pretrained_model_name_or_path": "tiny",
                "vit_config": {
                    "hidden_size": spec.vit_hidden,
                    "num_hidden_layers": spec.vit_layers,
                    "num_attention_heads": spec.vit_heads,
                    "intermediate_size": 2 * spec.vit_hidden,
                    "image_size": spec.cond_image_size,
                    "patch_size": spec.patch_size,
                },
            },
            "tokenizer_cls": EXPECTED_CLASSES["tokenizer_cls"],
            "tokenizer": {"plane_size": spec.plane_size, "num_channels": spec.width},
            "backbone_cls": EXPECTED_CLASSES["backbone_cls"],
            "backbone": {
                "in_channels": "${tokenizer.num_channels}",
                "num_attention_heads": spec.heads,
                "attention_head_dim": spec.head_dim,
                "num_layers": spec.layers,
                "norm_num_groups": spec.norm_groups,
                "cross_attention_dim": spec.vit_hidden,
            },
            "post_processor_cls": EXPECTED_CLASSES["post_processor_cls"],
            "post_processor": {"in_channels": spec.width, "out_channels": spec.plane_channels},
            "decoder_cls": EXPECTED_CLASSES["decoder_cls"],
            "decoder": {
                "in_channels": 3 * spec.plane_channels,
                "n_neurons": spec.mlp_width,
                "n_hidden_layers": spec.mlp_layers,
                "activation": "silu",
            },
            "renderer_cls": EXPECTED_CLASSES["renderer_cls"],
            "renderer": {
                "radius": spec.radius,
                "feature_reduction": "concat",
                "density_activation": "exp",
                "density_bias": -1.0,
                "num_samples_per_ray": 16,
            },
        }
    )


def _plane_fields(size: int) -> torch.Tensor:
    """(3, 4, size, size) designed plane channels: shape term and three colour ramps.

    Channel 0 is -(u^2 + v^2) / 2, so the three planes sum to -|p|^2 (normalised): a sphere's
    level sets. Channels 1-3 are linear ramps that colour the blob by position.
    """
    centres = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # align_corners=False
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    fields = torch.zeros(3, 4, size, size)
    fields[:, 0] = -(u**2 + v**2) / 2
    fields[0, 1] = 2 * u  # plane xy: u = x -> red follows x
    fields[1, 2] = 2 * v  # plane xz: v = z -> green follows z
    fields[2, 3] = 2 * u  # plane yz: u = y -> blue follows y
    return fields


@torch.no_grad()
def make_tiny_triposr(spec: TinyTripoSRSpec | None = None) -> TripoSRModel:
    """A tiny random TripoSR whose density, for any picture, is a blob crossing the threshold.

    Random: the ViT, the backbone's blocks. Set by hand: the triplane tokens carry designed
    fields in pixel-shuffle order, the up-sampler un-shuffles them exactly, the decoder passes
    them through SiLU's linear range, and the backbone's output projection is scaled down so
    the picture only nudges the result. Instant and deterministic, unlike fitting.
    """
    spec = spec or TinyTripoSRSpec()
    torch.manual_seed(spec.seed)
    return blob_triposr(TripoSRModel(tiny_triposr_config(spec)), spec)


@torch.no_grad()
def blob_triposr(model: TripoSRModel, spec: TinyTripoSRSpec) -> TripoSRModel:
    """Set ``model``'s triplane tokens, up-sampler and decoder (any size) so its density is
    the blob of ``spec`` (see ``make_tiny_triposr``); the benchmark uses it at full size."""
    used = 4  # channels per plane used by _plane_fields
    width, plane_size = model.cfg.tokenizer.num_channels, model.cfg.tokenizer.plane_size
    c_out = model.cfg.post_processor.out_channels
    if width < 4 * c_out or c_out < used:
        raise ValueError("the blob needs width >= 4 x plane channels and plane channels >= 4")
    model.backbone.proj_out.weight.mul_(spec.image_influence)
    model.backbone.proj_out.bias.mul_(spec.image_influence)

    # Up-sampler: output channel o at sub-pixel (a, b) = token channel 4 o + 2 a + b.
    weight = torch.zeros(width, c_out, 2, 2)
    for o in range(c_out):
        for a in range(2):
            for b in range(2):
                weight[4 * o + 2 * a + b, o, a, b] = 1.0
    model.post_processor.upsample.weight.copy_(weight)
    model.post_processor.upsample.bias.zero_()

    fields = _plane_fields(2 * plane_size)  # (3, 4, 2P, 2P)
    tokens = torch.zeros(3, width, plane_size, plane_size)
    for o in range(used):
        for a in range(2):
            for b in range(2):
                tokens[:, 4 * o + 2 * a + b] = fields[:, o, a::2, b::2]
    model.tokenizer.embeddings.copy_(tokens)

    # Decoder: neuron 0 = shape sum, neurons 1-3 = colour sums, all offset into SiLU's
    # linear range; the last layer maps them to raw density and colour features.
    linears = [m for m in model.decoder.layers if isinstance(m, torch.nn.Linear)]
    for layer in linears:
        layer.weight.zero_()
        layer.bias.zero_()
    first, hidden, last = linears[0], linears[1:-1], linears[-1]
    for n in range(used):
        for plane in range(3):
            first.weight[n, plane * c_out + n] = 1.0
        first.bias[n] = spec.linear_bias
        for layer in hidden:
            layer.weight[n, n] = 1.0
    renderer = model.cfg.renderer
    norm_radius_sq = (spec.blob_radius / renderer.radius) ** 2
    surface_raw = math.log(DEFAULT_THRESHOLD) - renderer.density_bias
    last.weight[0, 0] = spec.blob_slope
    last.bias[0] = surface_raw + spec.blob_slope * (norm_radius_sq - spec.linear_bias)
    for n in range(1, used):
        last.weight[n, n] = 1.0
        last.bias[n] = -spec.linear_bias
    return model.eval()


# --- TripoSG -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyTripoSGSpec:
    """Sizes of the tiny TripoSG and the blob its decoder is set to produce."""

    image_size: int = 70
    """DINOv2 position grid 5 x 5 (patch 14) against a 56 px input (4 x 4): the resize runs."""
    input_size: int = 56
    dino_hidden: int = 32
    dino_layers: int = 2
    heads: int = 2
    width: int = 32
    layers: int = 3
    latent_channels: int = 8
    vae_width: int = 32
    embed_frequency: int = 2
    blob_radius: float = 0.6
    """Radius (in the [-1, 1] box) of the nearly spherical surface."""
    anchor: float = 50.0
    """Constant channels that pin the decoder's output LayerNorm to a linear regime."""
    image_influence: float = 0.02
    """Scale of the query block's attention/MLP outputs: the latents nudge the blob."""
    seed: int = 0


def tiny_triposg_config(spec: TinyTripoSGSpec) -> TripoSGConfig:
    size = spec.input_size
    return TripoSGConfig(
        transformer=TransformerConfig(
            num_attention_heads=spec.heads,
            width=spec.width,
            in_channels=spec.latent_channels,
            num_layers=spec.layers,
            cross_attention_dim=spec.dino_hidden,
        ),
        vae=VAEConfig(
            latent_channels=spec.latent_channels,
            num_attention_heads=spec.heads,
            width_encoder=spec.vae_width // 2,
            width_decoder=spec.vae_width,
            num_layers_encoder=1,
            num_layers_decoder=1,
            embed_frequency=spec.embed_frequency,
        ),
        image_encoder=Dinov2Config(
            hidden_size=spec.dino_hidden,
            num_hidden_layers=spec.dino_layers,
            num_attention_heads=spec.heads,
            image_size=spec.image_size,
        ),
        image_processor=ImageProcessorConfig(
            size=Size(shortest_edge=size), crop_size=Size(height=size, width=size)
        ),
        scheduler=SchedulerConfig(),
    )


@torch.no_grad()
def make_tiny_triposg(spec: TinyTripoSGSpec | None = None) -> TripoSGModel:
    """A tiny random TripoSG whose SDF, for any picture and seed, is a near-sphere.

    Random: DINOv2, the flow transformer, the decoder's self-attention. Set by hand: the
    query projection computes ``s = cos x + cos y + cos z`` (from the Fourier features' first
    frequency) next to two large constant channels, so the output LayerNorm is linear in
    ``s``; the output projection turns that into ``(s - s0) / sin r`` (about r - |p| near the
    surface, > 0 inside).
    """
    spec = spec or TinyTripoSGSpec()
    torch.manual_seed(spec.seed)
    return blob_triposg(TripoSGModel(tiny_triposg_config(spec)), spec)


@torch.no_grad()
def blob_triposg(model: TripoSGModel, spec: TinyTripoSGSpec) -> TripoSGModel:
    """Set ``model``'s query projection and SDF head (any size) so its surface is the
    near-sphere of ``spec`` (see ``make_tiny_triposg``); the benchmark uses it at full size."""
    dec = model.vae.decoder
    query_block = dec.blocks[-1]
    for layer in (query_block.attn2.to_out[0], query_block.ff.net[2]):
        layer.weight.mul_(spec.image_influence)
        layer.bias.mul_(spec.image_influence)
    freqs = model.cfg.vae.embed_frequency
    width = model.cfg.vae.width_decoder
    if freqs < 1:
        raise ValueError("the blob needs at least one Fourier frequency")
    cos_first = [3 + 3 * freqs + axis * freqs for axis in range(3)]
    dec.proj_query.weight.zero_()
    dec.proj_query.bias.zero_()
    dec.proj_query.weight[0, cos_first] = 1.0
    dec.proj_query.weight[1, cos_first] = -1.0
    dec.proj_query.bias[2] = spec.anchor
    dec.proj_query.bias[3] = -spec.anchor
    # LayerNorm of [s, -s, A, -A, 0 ...]: channel 0 becomes ~ s / (A sqrt(2 / width)).
    gain = 1.0 / (spec.anchor * math.sqrt(2.0 / width))
    s0 = 2.0 + math.cos(spec.blob_radius)
    slope = 1.0 / math.sin(spec.blob_radius)
    dec.proj_out.weight.zero_()
    dec.proj_out.weight[0, 0] = -slope / gain  # the decoder negates: sdf = slope (s - s0)
    dec.proj_out.bias.fill_(slope * s0)
    return model.eval()


# --- diffusers ------------------------------------------------------------------------------


def _byte_level_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and word-final, no merges."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols = [chr(b) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            symbols.append(chr(256 + extra))
            extra += 1
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, ["#version: 0.2"]


def sd_pipeline(
    pipeline_cls: type[Any], *, unet: Any, vae: Any, text_encoder: Any, tokenizer: Any
) -> Any:
    """A Stable Diffusion pipeline of given parts: SD's DDIM noise schedule, no safety
    checker (moderation belongs at order intake; see docs/models.md)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return pipeline_cls(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def make_tiny_diffusion(folder: Path, seed: int = 0) -> None:
    """Write a tiny Stable-Diffusion-layout pipeline folder with ``save_pretrained``."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    vocab, merges = _byte_level_vocab()
    vocab_dir = folder / ".vocab"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (vocab_dir / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(
        vocab=str(vocab_dir / "vocab.json"),
        merges=str(vocab_dir / "merges.txt"),
        model_max_length=77,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    pipe = sd_pipeline(
        StableDiffusionPipeline, unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    for path in vocab_dir.iterdir():
        path.unlink()
    vocab_dir.rmdir()


def make_tiny_models(out_dir: Path, *, seed: int = 0) -> dict[str, Path]:
    """Write the tiny model folders under ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    diffusion = out_dir / "diffusion"
    triposr = out_dir / "triposr"
    triposg = out_dir / "triposg"
    make_tiny_diffusion(diffusion, seed=seed)
    save_folder(make_tiny_triposr(TinyTripoSRSpec(seed=seed)), triposr)
    save_triposg_folder(make_tiny_triposg(TinyTripoSGSpec(seed=seed)), triposg)
    return {"diffusion": diffusion, "triposr": triposr, "triposg": triposg}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write diffusion/ and triposr/ into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_tiny_models(args.out_dir, seed=args.seed)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(
        f"try: SCULPT_STYLIZER=diffusion SCULPT_DIFFUSION_MODEL_DIR={paths['diffusion']} "
        f"SCULPT_RECONSTRUCTOR=triposr SCULPT_TRIPOSR_MODEL_DIR={paths['triposr']}"
        f"  (or SCULPT_RECONSTRUCTOR=triposg SCULPT_TRIPOSG_MODEL_DIR={paths['triposg']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
