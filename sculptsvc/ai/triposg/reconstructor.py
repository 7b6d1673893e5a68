"""``TripoSGReconstructor``: stylized image in, closed shape with the picture projected on it.

1. Frame: the subject (our mask) on white, cropped, padded square; DINOv2 pixel values.
2. Condition: DINOv2-L image tokens.
3. Sample: rectified flow from seeded noise (``steps``, ``guidance_scale``, ``num_tokens``).
4. Shape: coarse-to-fine SDF grid to ``resolution`` cells, marching cubes: closed surface.
5. Colour: TripoSG predicts shape only; the stylized picture is projected along the view
   axis (front: the picture, back: a blur of it), fitted to the shape's silhouette extent,
   as a ``ColorSource`` the mesh stage bakes into the texture.

Frame: the release's meshes are y-up with the subject facing +z (the glTF convention; its
demo exports them to GLB unrotated), which is the frame the pipeline uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from pydantic import BaseModel, ConfigDict, Field

from sculptsvc.ai.torchutil import DeviceName, DtypeName, OnDevice, load_from_folder, make_generator
from sculptsvc.ai.triposg.extract import extract_surface, sdf_grid
from sculptsvc.ai.triposg.flow import sample_latents
from sculptsvc.ai.triposg.model import TripoSGModel
from sculptsvc.ai.triposg.preprocess import framed_subject, pixel_values
from sculptsvc.ai.triposg.weights import load_model
from sculptsvc.errors import ModelOutputInvalid
from sculptsvc.logging import get_logger
from sculptsvc.reconstruct.base import ColoredMesh
from sculptsvc.reconstruct.classic import ProjectedTexture, picture_texture
from sculptsvc.stylize.base import StylizedImage

log = get_logger(__name__)


class TripoSGParams(BaseModel):
    """Tunables (defaults: the release's 50 steps, guidance 7, 2048 tokens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(50, ge=1, le=200, description="Flow (Euler) steps.")
    guidance_scale: float = Field(7.0, ge=0.0, le=30.0, description="Classifier-free guidance.")
    num_tokens: int = Field(2048, ge=16, le=8192, description="Latent tokens (shape detail).")
    resolution: int = Field(256, ge=16, le=1024, description="Final SDF grid cells per axis.")
    coarse: int = Field(64, ge=8, le=256, description="Cells per axis of the dense first pass.")
    chunk_points: int = Field(
        1 << 16, ge=1024, description="Query points per decoder batch (bounds peak memory)."
    )
    dtype: DtypeName = Field("auto", description="auto: bf16/fp16 on CUDA, fp32 on the CPU.")
    min_faces: int = Field(4, ge=1, description="Fewer triangles is an invalid output.")

    def model_post_init(self, __context: object) -> None:
        ratio = self.resolution // max(1, self.coarse)
        if self.resolution % self.coarse or ratio & (ratio - 1):
            raise ValueError(
                f"resolution {self.resolution} must be coarse {self.coarse} x a power of two"
            )


@dataclass(frozen=True)
class FramedProjection:
    """``ColorSource``: the picture projected along z onto a shape in its own units.

    The shape's x/y extent is mapped onto the subject's bounding box in the picture (same
    centre; the longer picture side sets the scale). Picklable (arrays and floats).
    """

    texture: ProjectedTexture
    scale: float
    mesh_centre: tuple[float, float]
    pixel_centre: tuple[float, float]

    @classmethod
    def fit(cls, image: StylizedImage, vertices: np.ndarray) -> FramedProjection:
        mask = np.asarray(image.mask, dtype=bool)
        rows, cols = np.nonzero(mask)
        height = mask.shape[0]
        box_w = float(cols.max() + 1 - cols.min())
        box_h = float(rows.max() + 1 - rows.min())
        lo, hi = vertices[:, :2].min(axis=0), vertices[:, :2].max(axis=0)
        extent = np.maximum(hi - lo, 1e-9)
        scale = box_w / extent[0] if box_w >= box_h else box_h / extent[1]
        pixel_centre = (
            0.5 * (cols.min() + cols.max() + 1),
            height - 0.5 * (rows.min() + rows.max() + 1),
        )
        centre = 0.5 * (lo + hi)
        return cls(
            picture_texture(image),
            float(scale),
            (float(centre[0]), float(centre[1])),
            (float(pixel_centre[0]), float(pixel_centre[1])),
        )

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        pixels = np.zeros_like(points)
        pixels[:, 0] = (points[:, 0] - self.mesh_centre[0]) * self.scale + self.pixel_centre[0]
        pixels[:, 1] = (points[:, 1] - self.mesh_centre[1]) * self.scale + self.pixel_centre[1]
        return self.texture(pixels, normals)


class TripoSGReconstructor(OnDevice):
    """Implements ``sculptsvc.reconstruct.base.Reconstructor`` with a TripoSG release."""

    name = "triposg"

    def __init__(
        self, model: TripoSGModel, params: TripoSGParams | None = None, *, fingerprint: str = ""
    ) -> None:
        self.model = model
        self.params = params or TripoSGParams()
        self.fingerprint = fingerprint

    @classmethod
    def from_folder(
        cls, folder: Path, device: DeviceName = "auto", params: TripoSGParams | None = None
    ) -> TripoSGReconstructor:
        params = params or TripoSGParams()
        model, fingerprint = load_from_folder(
            folder, device, params.dtype, params.model_dump(), load_model, "triposg_loaded"
        )
        return cls(model, params, fingerprint=fingerprint)

    def image_tokens(self, images: list[StylizedImage]) -> torch.Tensor:
        """DINOv2 tokens (B, 1 + patches, D) of framed subjects."""
        cfg = self.model.cfg.image_processor
        pixels = torch.stack([pixel_values(framed_subject(image), cfg) for image in images])
        with torch.inference_mode():
            return self.model.image_encoder_dinov2(pixels.to(self.device, self.dtype))

    def latents(self, images: list[StylizedImage], *, seed: int) -> torch.Tensor:
        """Sampled shape latents (B, num_tokens, C); the seed fixes the starting noise."""
        p = self.params
        return sample_latents(
            self.model.transformer,
            self.model.cfg.scheduler,
            self.image_tokens(images),
            steps=p.steps,
            guidance_scale=p.guidance_scale,
            num_tokens=p.num_tokens,
            generator=make_generator(self.device, seed),
        )

    def reconstruct(self, image: StylizedImage, *, seed: int) -> ColoredMesh:
        p = self.params
        started = time.perf_counter()
        latents = self.latents([image], seed=seed)
        if not torch.isfinite(latents).all():
            raise ModelOutputInvalid("TripoSG produced non-finite latents")
        sampled = time.perf_counter()
        volume, stats = sdf_grid(
            self.model.vae,
            latents,
            resolution=p.resolution,
            coarse=p.coarse,
            chunk_points=p.chunk_points,
        )
        vertices, faces = extract_surface(volume)
        if len(faces) < p.min_faces:
            raise ModelOutputInvalid(f"TripoSG isosurface has only {len(faces)} triangles")
        source = FramedProjection.fit(image, vertices)
        normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
        log.info(
            "triposg_reconstructed",
            vertices=len(vertices),
            faces=len(faces),
            steps=p.steps,
            tokens=p.num_tokens,
            grid=stats.levels,
            queried=stats.total,
            sample_seconds=round(sampled - started, 3),
            seconds=round(time.perf_counter() - started, 3),
        )
        return ColoredMesh(
            vertices=vertices,
            faces=faces,
            vertex_colors=source(vertices, normals),
            color_source=source,
        )
