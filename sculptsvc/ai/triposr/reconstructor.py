"""``TripoSRReconstructor``: stylized image in, vertex-coloured closed mesh out.

Frame: TripoSR's canonical frame has the input camera on +x, image-right along +y and
image-up along +z. We hand meshes over in the glTF frame the rest of the pipeline uses
(+y up, the subject facing +z, image-right +x), a proper rotation, so winding is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from sculptsvc.ai.torchutil import DeviceName, DtypeName, OnDevice, load_from_folder
from sculptsvc.ai.triposr.isosurface import extract_mesh
from sculptsvc.ai.triposr.model import TripoSRModel
from sculptsvc.ai.triposr.preprocess import conditioning_image
from sculptsvc.ai.triposr.weights import load_model
from sculptsvc.errors import ModelOutputInvalid
from sculptsvc.logging import get_logger
from sculptsvc.reconstruct.base import ColoredMesh
from sculptsvc.stylize.base import StylizedImage

log = get_logger(__name__)

TRIPOSR_TO_GLTF = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
"""Rows pick (y, z, x): image-right -> +x, image-up -> +y, towards the camera -> +z."""


class TripoSRParams(BaseModel):
    """Tunables of the reconstruction (defaults are the upstream ones)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resolution: int = Field(256, ge=16, le=1024, description="Marching-cubes grid per axis.")
    threshold: float = Field(25.0, gt=0, description="Density of the isosurface.")
    foreground_ratio: float = Field(
        0.85, gt=0.1, le=1.0, description="Subject's longer side / conditioning image side."
    )
    chunk_points: int = Field(
        1 << 18, ge=1024, description="Points per decoder batch (bounds memory)."
    )
    dtype: DtypeName = Field(
        "float32", description="Network precision; fp32 matches upstream's isosurfaces."
    )
    min_faces: int = Field(
        4, ge=1, description="Fewer triangles than this is reported as an invalid output."
    )


class TripoSRReconstructor(OnDevice):
    """Implements ``sculptsvc.reconstruct.base.Reconstructor`` with a TripoSR network.

    The forward pass has no randomness (no dropout, no sampling), so ``seed`` is unused and
    the same image gives the same mesh on the same hardware and library versions.
    """

    name = "triposr"

    def __init__(
        self,
        model: TripoSRModel,
        params: TripoSRParams | None = None,
        *,
        fingerprint: str = "",
    ) -> None:
        self.model = model
        self.params = params or TripoSRParams()
        self.fingerprint = fingerprint

    @classmethod
    def from_folder(
        cls, folder: Path, device: DeviceName = "auto", params: TripoSRParams | None = None
    ) -> TripoSRReconstructor:
        """Load (and check) a TripoSR folder: config.yaml + model.ckpt or model.safetensors."""
        params = params or TripoSRParams()
        model, fingerprint = load_from_folder(
            folder, device, params.dtype, params.model_dump(), load_model, "triposr_loaded"
        )
        return cls(model, params, fingerprint=fingerprint)

    def scene_code(self, image: StylizedImage) -> torch.Tensor:
        """The triplane (3, C, H, W) the network predicts for ``image``."""
        cfg = self.model.cfg
        cond = conditioning_image(image, cfg.cond_image_size, self.params.foreground_ratio)
        with torch.inference_mode():
            code = self.model(cond[None].to(self.device, self.dtype))[0]
        if not torch.isfinite(code).all():
            raise ModelOutputInvalid("TripoSR produced a non-finite triplane")
        return code

    def reconstruct(self, image: StylizedImage, *, seed: int) -> ColoredMesh:
        del seed  # deterministic network: nothing to seed
        started = time.perf_counter()
        code = self.scene_code(image)
        raw = extract_mesh(
            self.model.decoder,
            code,
            self.model.cfg.renderer,
            resolution=self.params.resolution,
            threshold=self.params.threshold,
            chunk_points=self.params.chunk_points,
        )
        if len(raw.faces) < self.params.min_faces:
            raise ModelOutputInvalid(f"TripoSR isosurface has only {len(raw.faces)} triangles")
        vertices = raw.vertices @ TRIPOSR_TO_GLTF.T
        log.info(
            "triposr_reconstructed",
            vertices=len(vertices),
            faces=len(raw.faces),
            resolution=self.params.resolution,
            seconds=round(time.perf_counter() - started, 3),
        )
        return ColoredMesh(vertices=vertices, faces=raw.faces, vertex_colors=raw.colors)
