"""The preview's process-wide renderer: reuse changes no byte; the box filter is exact."""

from __future__ import annotations

import io
import sys

import numpy as np
import trimesh
from PIL import Image

from sculptsvc.mesh import MeshParams, process_mesh, render_preview
from sculptsvc.mesh.preview import _downsample
from sculptsvc.reconstruct.base import ColoredMesh

PARAMS = MeshParams(target_faces=2_000, texture_size=256)


def _rainbow(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    rgb = (np.sin(points[:, :3] * 0.4) * 0.5 + 0.5) * 255
    return np.hstack([rgb, np.full((len(points), 1), 255)]).astype(np.uint8)


def _part(shape: trimesh.Trimesh) -> object:
    colored = ColoredMesh(vertices=shape.vertices, faces=shape.faces, color_source=_rainbow)
    return process_mesh(colored, PARAMS)


def test_a_reused_renderer_draws_the_same_bytes_as_the_first_frame() -> None:
    ball = _part(trimesh.creation.icosphere(subdivisions=4, radius=10.0))
    box = _part(trimesh.creation.box(extents=(20.0, 12.0, 8.0)).subdivide().subdivide())
    first = render_preview(ball, size=128)
    other = render_preview(box, mode="solid", color_hex="#3366CC", size=128)
    again = render_preview(ball, size=128)
    assert first == again
    assert other != first
    image = np.asarray(Image.open(io.BytesIO(first)))
    assert image.shape == (128, 128, 4)
    assert 0 < (image[..., 3] == 255).mean() < 1  # a subject on a transparent background
    assert "pyglet" not in sys.modules  # the on-screen viewer was never imported


def _float_box_filter(color: np.ndarray, depth: np.ndarray, factor: int) -> np.ndarray:
    """The previous float64 formulation, kept as the reference."""
    alpha = (depth > 0).astype(np.float64)
    rgb = np.asarray(color, dtype=np.float64)[..., :3] * alpha[..., None]
    h, w = alpha.shape[0] // factor, alpha.shape[1] // factor
    rgb = rgb.reshape(h, factor, w, factor, 3).mean(axis=(1, 3))
    alpha = alpha.reshape(h, factor, w, factor).mean(axis=(1, 3))
    straight = rgb / np.maximum(alpha, 1e-12)[..., None]
    out = np.dstack([straight, alpha * 255.0])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_integer_box_filter_equals_the_float_one_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    color = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    depth = np.where(rng.random((256, 256)) < 0.6, rng.random((256, 256)), 0.0)
    for factor in (2, 4):
        assert np.array_equal(
            _downsample(color, depth, factor), _float_box_filter(color, depth, factor)
        )
