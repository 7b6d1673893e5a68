"""Scene code -> density grid -> marching cubes -> coloured, closed, outward-facing mesh.

Grid querying is vectorised and exact but much cheaper than sampling every point: the grid's
coordinates along each axis are shared, so each plane is sampled once on an R x R lattice,
and the decoder's first (linear) layer is split per plane,
``W [f_xy; f_xz; f_yz] = W_xy f_xy + W_xz f_xz + W_yz f_yz``, so R^3 points cost three R^2
projections plus broadcast sums. The remaining layers run in slabs of x-slices
(``chunk_points`` points at a time) to bound memory.

Marching cubes (``sculptsvc.ai.surface``) pads the volume with an "outside" layer, so the
surface is always closed (watertight) even where the object touches the bounding box
(upstream leaves a hole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sculptsvc.ai.surface import marching_cubes
from sculptsvc.ai.triposr.config import RendererConfig
from sculptsvc.ai.triposr.model import NeRFMLP

MAX_LOG_DENSITY = 80.0
"""exp() of more overflows float32; a density of e^80 is 'inside' for any sane threshold."""


@dataclass(frozen=True)
class RawMesh:
    """vertices (n, 3) float64 in model units ([-radius, radius]^3, TripoSR's frame);
    faces (m, 3) int64, counter-clockwise seen from outside; colors (n, 4) uint8."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray


def activate_density(raw: torch.Tensor, cfg: RendererConfig) -> torch.Tensor:
    """The renderer's density activation, in float32 and overflow-safe."""
    x = raw.float() + cfg.density_bias
    if cfg.density_activation in ("exp", "trunc_exp"):
        return torch.exp(x.clamp(max=MAX_LOG_DENSITY))
    if cfg.density_activation == "softplus":
        return F.softplus(x)
    if cfg.density_activation == "relu":
        return F.relu(x)
    return x


def _planes_on_lattice(scene_code: torch.Tensor, resolution: int) -> torch.Tensor:
    """(3, C, H, W) planes sampled at linspace(-1, 1, R)^2 -> (3, C, R, R) as [p, c, v, u]."""
    coords = torch.linspace(-1.0, 1.0, resolution, device=scene_code.device)
    vv, uu = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([uu, vv], dim=-1).to(scene_code.dtype)
    grid = grid.expand(3, resolution, resolution, 2)
    return F.grid_sample(scene_code, grid, mode="bilinear", align_corners=False)


def _split_first_layer(
    decoder: NeRFMLP, channels: int, reduction: str
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    first = decoder.layers[0]
    weight = first.weight
    if reduction == "concat":
        parts = [weight[:, i * channels : (i + 1) * channels] for i in range(3)]
    else:
        parts = [weight / 3.0] * 3
    return parts, first.bias


@torch.inference_mode()
def density_grid(
    decoder: NeRFMLP,
    scene_code: torch.Tensor,
    cfg: RendererConfig,
    resolution: int,
    chunk_points: int,
) -> np.ndarray:
    """Activated density on an R^3 grid over [-radius, radius]^3: (R, R, R) float32, [x, y, z].

    scene_code: (3, C, H, W), planes xy, xz, yz as the official renderer samples them.
    """
    r = resolution
    planes = _planes_on_lattice(scene_code, r)  # [p, c, v, u]
    channels = planes.shape[1]
    (w_xy, w_xz, w_yz), bias = _split_first_layer(decoder, channels, cfg.feature_reduction)
    # plane xy: u = x, v = y; plane xz: u = x, v = z; plane yz: u = y, v = z.
    a_xy = planes[0].permute(2, 1, 0) @ w_xy.T  # [x, y, d]
    a_xz = planes[1].permute(2, 1, 0) @ w_xz.T  # [x, z, d]
    a_yz = planes[2].permute(2, 1, 0) @ w_yz.T  # [y, z, d]
    if bias is not None:
        a_yz = a_yz + bias
    hidden_layers = decoder.layers[1:-1]
    last = decoder.layers[-1]
    w_density = last.weight[0:1].T
    b_density = last.bias[0:1] if last.bias is not None else None

    out = np.empty((r, r, r), dtype=np.float32)
    slab = max(1, chunk_points // (r * r))
    for x0 in range(0, r, slab):
        x1 = min(r, x0 + slab)
        h = a_xy[x0:x1, :, None, :] + a_xz[x0:x1, None, :, :] + a_yz[None, :, :, :]
        h = hidden_layers(h)
        raw = h @ w_density
        if b_density is not None:
            raw = raw + b_density
        out[x0:x1] = activate_density(raw[..., 0], cfg).cpu().numpy()
    return out


def decode_points(
    decoder: NeRFMLP, scene_code: torch.Tensor, cfg: RendererConfig, points: torch.Tensor
) -> torch.Tensor:
    """Raw decoder output (n, 4) at points (n, 3) in model units (differentiable)."""
    p = (points / cfg.radius).to(scene_code.dtype)
    uv = torch.stack((p[:, [0, 1]], p[:, [0, 2]], p[:, [1, 2]]), dim=0)[:, None]
    feats = F.grid_sample(scene_code, uv, mode="bilinear", align_corners=False)
    feats = feats[:, :, 0, :]  # (3, C, n)
    if cfg.feature_reduction == "concat":
        feats = feats.permute(2, 0, 1).reshape(feats.shape[2], -1)
    else:
        feats = feats.mean(dim=0).T
    return decoder(feats)


@torch.inference_mode()
def query_points(
    decoder: NeRFMLP,
    scene_code: torch.Tensor,
    cfg: RendererConfig,
    points: np.ndarray,
    chunk_points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Density (n,) float32 and colour (n, 3) float32 in [0, 1] at points in model units."""
    pts = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    pts = pts.to(scene_code.device)
    density = np.empty(len(points), dtype=np.float32)
    color = np.empty((len(points), 3), dtype=np.float32)
    for start in range(0, len(points), chunk_points):
        out = decode_points(decoder, scene_code, cfg, pts[start : start + chunk_points])
        end = start + len(out)
        density[start:end] = activate_density(out[:, 0], cfg).cpu().numpy()
        color[start:end] = torch.sigmoid(out[:, 1:4].float()).cpu().numpy()
    return density, color


def extract_mesh(
    decoder: NeRFMLP,
    scene_code: torch.Tensor,
    cfg: RendererConfig,
    *,
    resolution: int,
    threshold: float,
    chunk_points: int,
) -> RawMesh:
    """The coloured isosurface of one scene code (3, C, H, W)."""
    grid = density_grid(decoder, scene_code, cfg, resolution, chunk_points)
    verts, faces = marching_cubes(grid, threshold, cfg.radius)
    _, color = query_points(decoder, scene_code, cfg, verts, chunk_points)
    rgba = np.empty((len(verts), 4), dtype=np.uint8)
    rgba[:, :3] = np.clip(np.rint(color * 255.0), 0, 255).astype(np.uint8)
    rgba[:, 3] = 255
    return RawMesh(vertices=verts, faces=faces, colors=rgba)
