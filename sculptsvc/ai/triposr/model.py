"""The TripoSR network, written from the published architecture (LRM-style).

    image (B, 3, S, S) in [0, 1]
      -> image_tokenizer   DINO ViT-B/16 (our ``sculptsvc.ai.vit.DinoViT``), ImageNet-
                           normalised, position grid resized by transformers 4.35's rule:
                           (B, 1 + (S/16)^2, 768)
      tokenizer            learned triplane tokens (3, C, P, P) -> (B, C, 3 P P)
      -> backbone          GroupNorm + proj_in, N x [self-attn, cross-attn to the image
                           tokens, GEGLU feed-forward], proj_out, residual
      -> post_processor    ConvTranspose2d k2 s2 per plane: (B, 3, C', 2P, 2P) "scene code"
      decoder              NeRF MLP on concatenated plane features -> density + RGB

Module and parameter names follow the official checkpoint's state-dict keys exactly
(``backbone.transformer_blocks.3.attn2.to_k.weight`` ...), so ``model.ckpt`` loads strictly.
Nothing here imports transformers: the ViT is ours, so neither its renamed modules (v5) nor
its changed position-embedding resize (4.45+) can alter what this network computes.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from sculptsvc.ai.triposr.config import (
    BackboneConfig,
    DecoderConfig,
    ImageTokenizerConfig,
    TripoSRConfig,
)
from sculptsvc.ai.vit import DinoViT, ResizeRule, ViTSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GROUPNORM_EPS = 1e-6
"""Transformer1D's input GroupNorm epsilon in the official code."""
TRIPOSR_RESIZE_RULE: ResizeRule = "dino_scale_factor"
"""TripoSR pins transformers 4.35, whose ViT resizes position embeddings DINO's way."""


class ImageTokenizer(nn.Module):
    """DINO ViT: image (B, 3, H, W) in [0, 1] -> tokens (B, 1 + H W / 256, hidden).

    The ViT is our own (``sculptsvc.ai.vit``) with the checkpoint's transformers-4.x names,
    and resizes its 14 x 14 position grid with transformers 4.35's rule (what TripoSR pins),
    whatever transformers is installed.
    """

    def __init__(self, cfg: ImageTokenizerConfig) -> None:
        super().__init__()
        self.model = DinoViT(ViTSpec(**cfg.vit_kwargs()), rule=TRIPOSR_RESIZE_RULE)
        mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
        self.register_buffer("image_mean", mean, persistent=False)
        self.register_buffer("image_std", std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = (images - self.image_mean) / self.image_std
        return self.model(images)


class TriplaneTokenizer(nn.Module):
    """Learned triplane tokens, (3, C, P, P), flattened to a (B, C, 3 P P) sequence."""

    def __init__(self, plane_size: int, num_channels: int) -> None:
        super().__init__()
        self.plane_size = plane_size
        self.num_channels = num_channels
        init = torch.randn(3, num_channels, plane_size, plane_size) / math.sqrt(num_channels)
        self.embeddings = nn.Parameter(init)

    def forward(self, batch_size: int) -> torch.Tensor:
        tokens = self.embeddings.reshape(1, 3, self.num_channels, -1)
        tokens = tokens.permute(0, 2, 1, 3).reshape(1, self.num_channels, -1)
        return tokens.expand(batch_size, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, 3 P P) -> (B, 3, C, P, P)."""
        b, c, n = tokens.shape
        p = self.plane_size
        if c != self.num_channels or n != 3 * p * p:
            raise ValueError(f"tokens {tuple(tokens.shape)} do not fit planes of {c}x{p}x{p}")
        return tokens.reshape(b, c, 3, p, p).permute(0, 2, 1, 3, 4)


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names (to_q/to_k/to_v/to_out.0)."""

    def __init__(
        self, query_dim: int, heads: int, dim_head: int, cross_dim: int | None, bias: bool
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        kv_dim = cross_dim if cross_dim is not None else query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(kv_dim, inner, bias=bias)
        self.to_v = nn.Linear(kv_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU in, linear out; ``net.0`` / ``net.2`` as in the checkpoint."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TransformerBlock(nn.Module):
    """Pre-norm: self-attention, cross-attention to the image tokens, feed-forward."""

    def __init__(self, dim: int, cfg: BackboneConfig) -> None:
        super().__init__()
        affine = cfg.norm_elementwise_affine
        heads, head_dim = cfg.num_attention_heads, cfg.attention_head_dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn1 = Attention(dim, heads, head_dim, None, cfg.attention_bias)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn2 = Attention(dim, heads, head_dim, cfg.cross_attention_dim, cfg.attention_bias)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer1D(nn.Module):
    """(B, C, L) tokens -> (B, C, L), conditioned on (B, T, D) image tokens."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        if cfg.in_channels is None:
            raise ValueError("backbone.in_channels is required")
        width = cfg.in_channels
        inner = cfg.num_attention_heads * cfg.attention_head_dim
        self.norm = nn.GroupNorm(cfg.norm_num_groups, width, eps=GROUPNORM_EPS, affine=True)
        self.proj_in = nn.Linear(width, inner)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, cfg) for _ in range(cfg.num_layers)]
        )
        self.proj_out = nn.Linear(inner, width)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        residual = tokens
        x = self.proj_in(self.norm(tokens).permute(0, 2, 1))
        for block in self.transformer_blocks:
            x = block(x, context)
        return self.proj_out(x).permute(0, 2, 1) + residual


class TriplaneUpsampler(nn.Module):
    """Each plane (C, P, P) -> (C', 2P, 2P) with one transposed convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = planes.shape
        up = self.upsample(planes.reshape(b * n, c, h, w))
        return up.reshape(b, n, *up.shape[1:])


class NeRFMLP(nn.Module):
    """Plane features (..., in) -> (..., 4): raw density and 3 colour features."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        act: type[nn.Module] = nn.SiLU if cfg.activation == "silu" else nn.ReLU
        widths = [cfg.in_channels] + [cfg.n_neurons] * cfg.n_hidden_layers
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(widths):
            layers += [self._linear(fan_in, fan_out, cfg), act()]
        layers.append(self._linear(cfg.n_neurons, 4, cfg))
        self.layers = nn.Sequential(*layers)

    @staticmethod
    def _linear(fan_in: int, fan_out: int, cfg: DecoderConfig) -> nn.Linear:
        layer = nn.Linear(fan_in, fan_out, bias=cfg.bias)
        if cfg.weight_init == "kaiming_uniform" and not layer.weight.is_meta:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
        if cfg.bias and cfg.bias_init == "zero" and not layer.weight.is_meta:
            nn.init.zeros_(layer.bias)
        return layer

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class TripoSRModel(nn.Module):
    """Image -> triplane scene code; the decoder is queried by ``isosurface``."""

    def __init__(self, cfg: TripoSRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_tokenizer = ImageTokenizer(cfg.image_tokenizer)
        self.tokenizer = TriplaneTokenizer(cfg.tokenizer.plane_size, cfg.tokenizer.num_channels)
        self.backbone = Transformer1D(cfg.backbone)
        self.post_processor = TriplaneUpsampler(
            cfg.post_processor.in_channels, cfg.post_processor.out_channels
        )
        self.decoder = NeRFMLP(cfg.decoder)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) in [0, 1] -> scene codes (B, 3, C', 2P, 2P)."""
        context = self.image_tokenizer(images)
        tokens = self.backbone(self.tokenizer(images.shape[0]), context)
        return self.post_processor(self.tokenizer.detokenize(tokens))


def parameter_manifest(model: nn.Module) -> OrderedDict[str, list[int]]:
    """Every state-dict entry's official name and shape (works on the meta device)."""
    return OrderedDict((k, list(v.shape)) for k, v in model.state_dict().items())
