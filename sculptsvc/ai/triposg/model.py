"""The TripoSG networks, written from the published architecture (arXiv 2502.06608 and the
release's module layout); parameter names are the release's state-dict keys.

    image (B, 3, 224, 224) -> DINOv2-L (``sculptsvc.ai.vit.Dinov2Encoder``) -> (B, 257, 1024)
    transformer  latents (B, T, 64), flow time t, image tokens -> velocity (B, T, 64)
                 t: sinusoidal(width) -> ``time_proj`` MLP, prepended as one token;
                 ``proj_in``; 21 DiT blocks (self-attention, cross-attention, GELU MLP, all
                 pre-norm in fp32, RMS QK-norm); long skips: block i > L/2 concatenates the
                 output of block L-1-i, ``skip_linear``, then ``skip_norm``; ``norm_out``,
                 drop the time token, ``proj_out``
    vae.decoder  latents -> ``post_quant`` -> 16 self-attention blocks = keys/values;
                 query points -> Fourier features -> ``proj_query`` -> one cross-attention
                 block -> ``norm_out`` -> ``proj_out`` -> negated: SDF-like logits, > 0 inside
    vae.encoder  (point cloud -> latents; present in the checkpoint, unused for inference)

Two details that decide whether a checkpoint computes what it was trained to: the release
splits the concatenated ``[q | k | v]`` (self-attention) or ``[k | v]`` (cross-attention)
projections per head first (``view(B, L, heads, 3 * head_dim)``), not per projection, and
its ``skip_norm`` comes after ``skip_linear``. Both are reproduced here.

Speed: attention is ``scaled_dot_product_attention``; the decoder's keys and values depend
only on the latents, so :meth:`VAEDecoder.keys_values` computes them once per shape and every
chunk of query points reuses them (upstream recomputes them per chunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sculptsvc.ai.triposg.config import TransformerConfig, TripoSGConfig, VAEConfig
from sculptsvc.ai.vit import Dinov2Encoder, init_vit_weights

NORM_EPS = 1e-5
"""Epsilon of the blocks' fp32 LayerNorms."""
QK_NORM_EPS = 1e-6
MLP_RATIO = 4
MAX_PERIOD = 10_000.0
"""Sinusoidal time embedding: frequencies exp(-ln(MAX_PERIOD) i / (dim / 2))."""


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weights' dtype (half-precision safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


class RMSNorm(nn.Module):
    """Per-head RMS norm of queries/keys (float32 inside)."""

    def __init__(self, dim: int, eps: float = QK_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).to(x.dtype)


class Attention(nn.Module):
    """diffusers-named attention (``to_q``/``to_k``/``to_v``/``to_out.0``, ``norm_q``/``norm_k``,
    ``norm_cross``) with the release's head-first split of the fused projections."""

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        cross_dim: int | None,
        qk_norm: bool,
        norm_cross: bool,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.is_cross = cross_dim is not None
        kv_dim = cross_dim if cross_dim is not None else dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim, dim, bias=False)
        if qk_norm:
            self.norm_q = RMSNorm(self.head_dim)
            self.norm_k = RMSNorm(self.head_dim)
        if norm_cross:
            self.norm_cross = nn.LayerNorm(kv_dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, heads * d) -> (B, heads, L, d)."""
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, -1).transpose(1, 2)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values (B, heads, S, d) of a context (B, S, C)."""
        if hasattr(self, "norm_cross"):
            context = self.norm_cross(context)
        kv = self._heads(torch.cat((self.to_k(context), self.to_v(context)), dim=-1))
        key, value = kv.split(self.head_dim, dim=-1)
        if hasattr(self, "norm_k"):
            key = self.norm_k(key)
        return key, value

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        cached: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        b, n, _ = x.shape
        if self.is_cross:
            key, value = cached if cached is not None else self.keys_values(context)  # type: ignore[arg-type]
            query = self._heads(self.to_q(x))
        else:
            qkv = self._heads(torch.cat((self.to_q(x), self.to_k(x), self.to_v(x)), dim=-1))
            query, key, value = qkv.split(self.head_dim, dim=-1)
            if hasattr(self, "norm_k"):
                key = self.norm_k(key)
        if hasattr(self, "norm_q"):
            query = self.norm_q(query)
        out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(1, 2).reshape(b, n, -1).to(x.dtype)
        return self.to_out[1](self.to_out[0](out))


class GELUProj(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    """``net.0.proj`` (GELU) and ``net.2``, as diffusers names them."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GELUProj(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


@dataclass(frozen=True)
class BlockKind:
    self_attention: bool
    cross_dim: int | None
    qk_norm: bool
    norm_cross: bool
    skip: bool = False


class DiTBlock(nn.Module):
    """Pre-norm block: [long skip], [self-attention], [cross-attention], feed-forward."""

    def __init__(self, dim: int, heads: int, kind: BlockKind) -> None:
        super().__init__()
        self.kind = kind
        if kind.self_attention:
            self.norm1 = FP32LayerNorm(dim, NORM_EPS)
            self.attn1 = Attention(
                dim, heads, cross_dim=None, qk_norm=kind.qk_norm, norm_cross=False
            )
        if kind.cross_dim is not None:
            self.norm2 = FP32LayerNorm(dim, NORM_EPS)
            self.attn2 = Attention(
                dim,
                heads,
                cross_dim=kind.cross_dim,
                qk_norm=kind.qk_norm,
                norm_cross=kind.norm_cross,
            )
        self.norm3 = FP32LayerNorm(dim, NORM_EPS)
        self.ff = FeedForward(dim, dim * MLP_RATIO)
        if kind.skip:
            self.skip_norm = FP32LayerNorm(dim, NORM_EPS)
            self.skip_linear = nn.Linear(2 * dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        skip: torch.Tensor | None = None,
        cached: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if self.kind.skip:
            if skip is None:
                raise ValueError("a skip block needs its skip input")
            x = self.skip_norm(self.skip_linear(torch.cat((skip, x), dim=-1)))
        if self.kind.self_attention:
            x = x + self.attn1(self.norm1(x))
        if self.kind.cross_dim is not None:
            x = x + self.attn2(self.norm2(x), context, cached)
        return x + self.ff(self.norm3(x))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) flow times in [0, num_train_timesteps] -> (B, dim) [sin | cos] features."""
    half = dim // 2
    exponent = -math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat((torch.sin(angles), torch.cos(angles)), dim=-1)


class TimestepMLP(nn.Module):
    """``time_proj.linear_1`` (width -> 4 width), GELU, ``linear_2`` (-> width)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim, 4 * dim)
        self.linear_2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class TripoSGTransformer(nn.Module):
    """Velocity of the rectified flow: latents (B, T, C), times (B,), image tokens (B, S, D)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width, layers = cfg.width, cfg.num_layers
        self.time_proj = TimestepMLP(width)
        self.proj_in = nn.Linear(cfg.in_channels, width)
        self.blocks = nn.ModuleList(
            [
                DiTBlock(
                    width,
                    cfg.num_attention_heads,
                    BlockKind(
                        self_attention=True,
                        cross_dim=cfg.cross_attention_dim,
                        qk_norm=True,
                        norm_cross=False,
                        skip=i > layers // 2,
                    ),
                )
                for i in range(layers)
            ]
        )
        self.norm_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, cfg.in_channels)

    def forward(
        self, latents: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        n = latents.shape[1]
        temb = timestep_embedding(timesteps, self.cfg.width).to(latents.dtype)
        x = torch.cat((self.time_proj(temb)[:, None], self.proj_in(latents)), dim=1)
        half = self.cfg.num_layers // 2
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x, context, skips.pop() if i > half else None)
            if i < half:
                skips.append(x)
        return self.proj_out(self.norm_out(x)[:, -n:])


class FourierFeatures(nn.Module):
    """Points (..., 3) -> (..., 3 (2 F + 1)): [p | sin(p f) | cos(p f)], f = 2^i (x pi)."""

    def __init__(self, num_freqs: int, include_pi: bool) -> None:
        super().__init__()
        freqs = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if include_pi:
            freqs = freqs * math.pi
        self.register_buffer("frequencies", freqs, persistent=False)
        self.num_freqs = num_freqs

    def out_dim(self, input_dim: int) -> int:
        return input_dim * (2 * self.num_freqs + 1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.num_freqs == 0:
            return points
        angles = (points[..., None] * self.frequencies.to(points.dtype)).flatten(-2)
        return torch.cat((points, angles.sin(), angles.cos()), dim=-1)


def _self_kind() -> BlockKind:
    return BlockKind(self_attention=True, cross_dim=None, qk_norm=False, norm_cross=False)


def _cross_kind(dim: int) -> BlockKind:
    return BlockKind(self_attention=False, cross_dim=dim, qk_norm=False, norm_cross=True)


class VAEEncoder(nn.Module):
    """Point cloud -> latent tokens (training / shape encoding; kept for the checkpoint)."""

    def __init__(self, in_channels: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(in_channels, dim)
        blocks = [DiTBlock(dim, heads, _cross_kind(dim))]
        blocks += [DiTBlock(dim, heads, _self_kind()) for _ in range(layers)]
        self.blocks = nn.ModuleList(blocks)
        self.norm_out = nn.LayerNorm(dim)


class VAEDecoder(nn.Module):
    def __init__(self, in_channels: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        blocks = [DiTBlock(dim, heads, _self_kind()) for _ in range(layers)]
        blocks.append(DiTBlock(dim, heads, _cross_kind(dim)))
        self.blocks = nn.ModuleList(blocks)
        self.proj_query = nn.Linear(in_channels, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.proj_out = nn.Linear(dim, 1)


class TripoSGVAE(nn.Module):
    """SDF decoder of latent tokens (and the encoder the checkpoint carries)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedder = FourierFeatures(cfg.embed_frequency, cfg.embed_include_pi)
        embed = self.embedder.out_dim(cfg.in_channels)
        self.encoder = VAEEncoder(
            cfg.in_channels + embed,
            cfg.width_encoder,
            cfg.num_attention_heads,
            cfg.num_layers_encoder,
        )
        self.decoder = VAEDecoder(
            embed, cfg.width_decoder, cfg.num_attention_heads, cfg.num_layers_decoder
        )
        self.quant = nn.Linear(cfg.width_encoder, 2 * cfg.latent_channels)
        self.post_quant = nn.Linear(cfg.latent_channels, cfg.width_decoder)

    def keys_values(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents (B, T, C) -> the query block's keys and values, computed once per shape."""
        x = self.post_quant(latents)
        for block in self.decoder.blocks[:-1]:
            x = block(x)
        return self.decoder.blocks[-1].attn2.keys_values(x)

    def sdf(self, cache: tuple[torch.Tensor, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        """Logits (B, N) at points (B, N, 3) in [-1, 1]^3: positive inside, 0 on the surface."""
        dec = self.decoder
        q = dec.proj_query(self.embedder(points.to(dec.proj_query.weight.dtype)))
        h = dec.blocks[-1](q, cached=cache)
        return -dec.proj_out(dec.norm_out(h))[..., 0]


class TripoSGModel(nn.Module):
    """The three weighted parts of a release folder, under their folder names."""

    def __init__(self, cfg: TripoSGConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.transformer = TripoSGTransformer(cfg.transformer)
        self.vae = TripoSGVAE(cfg.vae)
        self.image_encoder_dinov2 = Dinov2Encoder(cfg.image_encoder)
        init_vit_weights(self.transformer)
        init_vit_weights(self.vae)


PARTS = ("transformer", "vae", "image_encoder_dinov2")
"""Sub-modules of ``TripoSGModel`` = weighted folders of the release."""
