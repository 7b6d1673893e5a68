"""Our own ViT image encoders: DINO ViT-B/16 (TripoSR) and DINOv2 (TripoSG).

Both are plain pre-norm vision transformers, written here from the published architecture so
that what they compute never depends on the installed transformers release:

* **Position-embedding resize.** The encoders run at input sizes other than the grid their
  position embeddings were trained on (TripoSR: 512 px against DINO's 224 px grid of 14 x 14;
  TripoSG: 224 px against DINOv2's 518 px grid of 37 x 37). transformers changed how it
  resizes between releases: 4.35 (what TripoSR pins) interpolates bicubically with
  ``scale_factor = (h / patch + 0.1) / sqrt(N)`` (DINO's original trick), newer releases
  resize straight to ``size = h / patch``. The two differ by ~1e-2 in the embeddings, which
  moves every token. :func:`resize_position_embeddings` implements both, by name, and each
  model states which one its reference used.
* **Parameter names.** transformers 5 renamed the ViT/DINOv2 modules (``q_proj``...); the
  published checkpoints use the 4.x names, which these modules carry, so weights load strictly
  without translation hooks.

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels on GPUs).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

ResizeRule = Literal["dino_scale_factor", "target_size"]
"""``dino_scale_factor``: transformers 4.35 / DINO (``(n + 0.1) / sqrt(N)``, bicubic);
``target_size``: newer transformers (bicubic straight to ``n`` per side, in float32)."""

DINO_OFFSET = 0.1
"""DINO's offset against floating-point error in the output size (dino issue 8)."""
INIT_STD = 0.02
"""ViT initialisation (transformers' ``initializer_range``): random models stay tame."""


@torch.no_grad()
def init_vit_weights(model: nn.Module) -> None:
    """Truncated-normal linear/conv weights, zero biases, unit norms (skipped on meta)."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None or weight.is_meta:
            continue
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=INIT_STD)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()


def resize_position_embeddings(
    position_embeddings: torch.Tensor, grid_h: int, grid_w: int, rule: ResizeRule
) -> torch.Tensor:
    """(1, 1 + N, D) embeddings of a square sqrt(N) grid -> (1, 1 + grid_h grid_w, D).

    The class token's embedding is kept; the patch embeddings are resized bicubically
    (align_corners False, PyTorch's cubic kernel a = -0.75). With ``dino_scale_factor`` the
    kernel samples at ``src = (dst + 0.5) / s - 0.5`` with ``s = (grid + 0.1) / sqrt(N)``
    (the given scale factor, not the size ratio), as transformers 4.35 does.
    """
    num_positions = position_embeddings.shape[1] - 1
    side = math.isqrt(num_positions)
    if side * side != num_positions:
        raise ValueError(f"{num_positions} position embeddings do not form a square grid")
    if (grid_h, grid_w) == (side, side):
        return position_embeddings
    dim = position_embeddings.shape[-1]
    cls_pos = position_embeddings[:, :1]
    grid = position_embeddings[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    dtype = grid.dtype
    grid = grid.float()  # bicubic in half precision shifts the embeddings
    if rule == "dino_scale_factor":
        scale = ((grid_h + DINO_OFFSET) / side, (grid_w + DINO_OFFSET) / side)
        resized = F.interpolate(
            grid,
            scale_factor=scale,
            mode="bicubic",
            align_corners=False,
            recompute_scale_factor=False,
        )
    else:
        resized = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
    if resized.shape[-2:] != (grid_h, grid_w):
        raise ValueError(f"resized grid {tuple(resized.shape[-2:])} != {(grid_h, grid_w)}")
    patch_pos = resized.to(dtype).permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((cls_pos, patch_pos), dim=1)


class ViTSpec(BaseModel):
    """Hyper-parameters of a ViT encoder (the fields of a transformers ``config.json``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    hidden_size: int = Field(768, gt=0)
    num_hidden_layers: int = Field(12, gt=0)
    num_attention_heads: int = Field(12, gt=0)
    intermediate_size: int | None = None
    mlp_ratio: float = 4.0
    hidden_act: Literal["gelu"] = "gelu"
    image_size: int = Field(224, gt=0)
    patch_size: int = Field(16, gt=0)
    num_channels: int = 3
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-12
    layerscale_value: float = 1.0
    use_swiglu_ffn: Literal[False] = False

    @property
    def mlp_hidden(self) -> int:
        if self.intermediate_size is not None:
            return self.intermediate_size
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class _Dense(nn.Module):
    """A holder whose only child is ``dense`` (transformers' ``*.output.dense`` names)."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(fan_in, fan_out)


class SelfAttention(nn.Module):
    """``query``/``key``/``value`` projections + SDPA; (B, L, D) -> (B, L, D) before ``output``."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(dim, dim, bias=bias)
        self.key = nn.Linear(dim, dim, bias=bias)
        self.value = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        )
        return out.transpose(1, 2).reshape(b, n, d)


class Attention(nn.Module):
    """``attention.attention.{query,key,value}`` + ``attention.output.dense``."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.attention = SelfAttention(dim, heads, bias)
        self.output = _Dense(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class PatchEmbeddings(nn.Module):
    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        self.patch_size = spec.patch_size
        self.projection = nn.Conv2d(
            spec.num_channels, spec.hidden_size, spec.patch_size, stride=spec.patch_size
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(images).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    """Patches + class token + (resized) position embeddings; optional DINOv2 mask token."""

    def __init__(self, spec: ViTSpec, rule: ResizeRule, *, mask_token: bool) -> None:
        super().__init__()
        self.rule: ResizeRule = rule
        dim = spec.hidden_size
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        if mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embeddings = PatchEmbeddings(spec)
        self.position_embeddings = nn.Parameter(torch.randn(1, 1 + spec.grid**2, dim) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        patch = self.patch_embeddings.patch_size
        tokens = self.patch_embeddings(images)
        tokens = torch.cat((self.cls_token.expand(b, -1, -1).to(tokens.dtype), tokens), dim=1)
        pos = resize_position_embeddings(
            self.position_embeddings, h // patch, w // patch, self.rule
        )
        return tokens + pos.to(tokens.dtype)


class DinoLayer(nn.Module):
    """DINO / transformers ViT block: ``layernorm_before``, attention, ``layernorm_after``,
    ``intermediate.dense`` (GELU), ``output.dense``; residuals around both halves."""

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        dim, eps = spec.hidden_size, spec.layer_norm_eps
        self.attention = Attention(dim, spec.num_attention_heads, spec.qkv_bias)
        self.intermediate = _Dense(dim, spec.mlp_hidden)
        self.output = _Dense(spec.mlp_hidden, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=eps)
        self.layernorm_after = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        hidden = F.gelu(self.intermediate.dense(self.layernorm_after(x)))
        return x + self.output.dense(hidden)


class LayerScale(nn.Module):
    def __init__(self, dim: int, value: float) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.full((dim,), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Dinov2Layer(nn.Module):
    """DINOv2 block: norm1, attention, layer_scale1, norm2, mlp, layer_scale2."""

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        dim, eps = spec.hidden_size, spec.layer_norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attention = Attention(dim, spec.num_attention_heads, spec.qkv_bias)
        self.layer_scale1 = LayerScale(dim, spec.layerscale_value)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, spec.mlp_hidden)
        self.layer_scale2 = LayerScale(dim, spec.layerscale_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class Encoder(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class DinoViT(nn.Module):
    """DINO ViT (TripoSR's image tokenizer): images (B, 3, H, W), already normalised ->
    last hidden state (B, 1 + (H/p)(W/p), D). Names as transformers 4.x ``ViTModel``
    (with its unused pooler, which the checkpoint carries)."""

    def __init__(self, spec: ViTSpec, rule: ResizeRule = "dino_scale_factor") -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = Embeddings(spec, rule, mask_token=False)
        self.encoder = Encoder([DinoLayer(spec) for _ in range(spec.num_hidden_layers)])
        self.layernorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.pooler = _Dense(spec.hidden_size, spec.hidden_size)
        init_vit_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.encoder(self.embeddings(images)))


class Dinov2Encoder(nn.Module):
    """DINOv2 (TripoSG's image encoder): images (B, 3, H, W), normalised -> last hidden
    state (B, 1 + (H/p)(W/p), D). Names as transformers 4.x ``Dinov2Model``."""

    def __init__(self, spec: ViTSpec, rule: ResizeRule = "target_size") -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = Embeddings(spec, rule, mask_token=True)
        self.encoder = Encoder([Dinov2Layer(spec) for _ in range(spec.num_hidden_layers)])
        self.layernorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        init_vit_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.encoder(self.embeddings(images)))
