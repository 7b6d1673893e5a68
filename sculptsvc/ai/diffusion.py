"""``DiffusionStylizer``: restyle the subject as a glossy silicone render with a diffusers
image-to-image pipeline loaded from a local folder (never from the hub).

1. Subject: the classic stylizer's extraction (the alpha channel when it cuts the subject
   out, else GrabCut seeded from the border colours), so both backends agree on what the
   subject is.
2. Frame: crop to the subject, centre it on a neutral grey square with its longer side at
   ``foreground_ratio`` of the frame (what TripoSR expects too), resize to the pipeline's
   native resolution.
3. Restyle: prompt, negative prompt, strength, steps and guidance from ``DiffusionParams``;
   noise from a ``torch.Generator`` seeded with the order's seed, so a replay repeats it.
4. Silhouette: the output keeps the input's subject mask exactly (alpha = mask, colour
   outside it zeroed): diffusion may repaint the surface, never the outline the sculpture is
   built from.

Precision: bf16 (or fp16 on older GPUs) on CUDA, fp32 on the CPU; see ``torchutil``.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from sculptsvc.ai.identity import folder_fingerprint
from sculptsvc.ai.safetensors_check import check_safetensors
from sculptsvc.ai.torchutil import (
    DeviceName,
    DtypeName,
    make_deterministic,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from sculptsvc.errors import InvalidImage, ModelOutputInvalid, ModelUnavailable, NoSubject
from sculptsvc.imaging import single_threaded_cv2
from sculptsvc.logging import get_logger
from sculptsvc.settings import Settings
from sculptsvc.stylize.base import StylizedImage
from sculptsvc.stylize.subject import SubjectHint, subject_mask

log = get_logger(__name__)

SILICONE_PROMPT = (
    "a glossy cast silicone rubber figurine of the subject, smooth soft-touch surface, "
    "clear coat sheen, solid pigmented colours, studio product photo, soft even lighting, "
    "plain neutral grey background, sharp focus, high detail"
)
SILICONE_NEGATIVE_PROMPT = (
    "text, watermark, logo, frame, border, extra objects, cluttered background, "
    "fur, hair strands, fabric texture, transparent, glass, metal, blurry, low quality, "
    "deformed, extra limbs, harsh shadows"
)

MaskFn = Callable[[np.ndarray, int], np.ndarray]
"""(image (h, w, 3|4) uint8, seed) -> subject mask (h, w) bool; raises ``NoSubject``."""


class DiffusionParams(BaseModel):
    """Knobs of the diffusion stylizer; operators set them as ``SCULPT_DIFFUSION_*``
    settings (``sculptsvc/settings.py``), see ``from_settings``.

    Defaults suit SD 1.5 / SDXL base. For few-step models set e.g. FLUX.1-schnell: steps 4,
    guidance 0; see docs/models.md.
    """

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(SILICONE_PROMPT, description="What the render should look like.")
    negative_prompt: str = Field(
        SILICONE_NEGATIVE_PROMPT, description="What to steer away from (if the model has it)."
    )
    strength: float = Field(
        0.5, gt=0.0, le=1.0, description="How far from the picture (0 keeps it, 1 ignores it)."
    )
    steps: int = Field(30, ge=1, le=200, description="Scheduler steps at strength 1.")
    guidance_scale: float = Field(7.0, ge=0.0, le=30.0, description="Classifier-free guidance.")
    resolution: int | None = Field(
        None, ge=64, le=2048, description="Square working size; None: the model's native size."
    )
    foreground_ratio: float = Field(
        0.85, gt=0.1, le=1.0, description="Subject's longer side / frame side."
    )
    background_grey: int = Field(128, ge=0, le=255, description="Backdrop behind the subject.")
    dtype: DtypeName = Field("auto", description="auto: bf16/fp16 on CUDA, fp32 on CPU.")
    variant: str | None = Field(None, description="Weight file variant, e.g. 'fp16'.")
    pipeline_class: str = Field(
        "AutoPipelineForImage2Image",
        description="diffusers class that loads the folder (an *Img2Img* pipeline or Auto).",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> DiffusionParams:
        chosen = {
            "prompt": settings.diffusion_prompt,
            "negative_prompt": settings.diffusion_negative_prompt,
            "strength": settings.diffusion_strength,
            "steps": settings.diffusion_steps,
            "guidance_scale": settings.diffusion_guidance_scale,
            "resolution": settings.diffusion_resolution,
            "dtype": settings.diffusion_dtype,
            "variant": settings.diffusion_variant,
            "pipeline_class": settings.diffusion_pipeline_class,
        }
        unset_prompts = {"prompt", "negative_prompt"}
        return cls(**{k: v for k, v in chosen.items() if v is not None or k not in unset_prompts})


def classic_subject_mask(
    image: np.ndarray, seed: int, hint: SubjectHint | None = None
) -> np.ndarray:
    """Full-resolution subject mask from the shared extraction (``stylize.subject``).

    ``seed`` is the mask function's signature; the outline does not depend on it."""
    with single_threaded_cv2():
        return subject_mask(image, hint=hint)


def frame_subject(
    image: np.ndarray, mask: np.ndarray, size: int, foreground_ratio: float, grey: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subject centred on a grey square: (size, size, 3) uint8 RGB and (size, size) bool mask.

    Straight alpha (when present) is composited over the grey inside the mask.
    """
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = image[top:bottom, left:right]
    crop_mask = mask[top:bottom, left:right]
    rgb = crop[..., :3].astype(np.float32)
    alpha = crop_mask.astype(np.float32)
    if crop.shape[2] == 4:
        alpha = alpha * (crop[..., 3].astype(np.float32) / 255.0)
    rgb = rgb * alpha[..., None] + grey * (1.0 - alpha[..., None])

    height, width = crop_mask.shape
    side = int(np.ceil(max(height, width) / foreground_ratio))
    canvas = np.full((side, side, 3), grey, dtype=np.float32)
    canvas_mask = np.zeros((side, side), dtype=np.float32)
    y0, x0 = (side - height) // 2, (side - width) // 2
    canvas[y0 : y0 + height, x0 : x0 + width] = rgb
    canvas_mask[y0 : y0 + height, x0 : x0 + width] = crop_mask
    shrink = size < side
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    framed = cv2.resize(canvas, (size, size), interpolation=interpolation)
    framed_mask = cv2.resize(canvas_mask, (size, size), interpolation=interpolation) >= 0.5
    if not framed_mask.any():
        raise NoSubject("the subject is too small to survive framing at the working size")
    return np.clip(np.rint(framed), 0, 255).astype(np.uint8), framed_mask


class DiffusionStylizer:
    """Implements ``sculptsvc.stylize.base.Stylizer`` with a local diffusers pipeline."""

    name = "diffusion"

    def __init__(
        self,
        pipeline: Any,
        params: DiffusionParams | None = None,
        *,
        mask_fn: MaskFn = classic_subject_mask,
        fingerprint: str = "",
    ) -> None:
        self.pipe = pipeline
        self.params = params or DiffusionParams()
        self.mask_fn = mask_fn
        self.fingerprint = fingerprint
        self._call_args = set(inspect.signature(pipeline.__call__).parameters)
        self.resolution = self.params.resolution or native_resolution(pipeline)

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        device: DeviceName = "auto",
        params: DiffusionParams | None = None,
        *,
        mask_fn: MaskFn = classic_subject_mask,
    ) -> DiffusionStylizer:
        params = params or DiffusionParams()
        dev = resolve_device(device)
        started = time.perf_counter()
        pipe = load_pipeline(folder, params, dev)
        fingerprint = folder_fingerprint(folder, params.model_dump())
        log.info(
            "diffusion_loaded",
            folder=str(folder),
            pipeline=type(pipe).__name__,
            device=str(dev),
            dtype=str(pipe.dtype),
            seconds=round(time.perf_counter() - started, 3),
            fingerprint=fingerprint[:16],
        )
        return cls(pipe, params, mask_fn=mask_fn, fingerprint=fingerprint)

    def stylize(
        self, image: np.ndarray, *, seed: int, hint: SubjectHint | None = None
    ) -> StylizedImage:
        """image: (h, w, 3|4) uint8 RGB(A) -> square stylized subject at ``self.resolution``.

        A shop's ``hint`` replaces ``mask_fn`` by the shared extraction, which honours it.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise InvalidImage(f"expected (h, w, 3|4) uint8, got {image.shape} {image.dtype}")
        started = time.perf_counter()
        # 1. Subject.
        if hint is None:
            mask = np.asarray(self.mask_fn(image, seed), dtype=bool)
        else:
            mask = classic_subject_mask(image, seed, hint)
        if mask.shape != image.shape[:2] or not mask.any():
            raise NoSubject("no subject found to stylize")
        # 2. Frame.
        p = self.params
        framed, framed_mask = frame_subject(
            image, mask, self.resolution, p.foreground_ratio, p.background_grey
        )
        # 3. Restyle.
        styled = self._run_pipeline(framed, seed)
        # 4. Silhouette kept.
        rgba = np.zeros((*framed_mask.shape, 4), dtype=np.uint8)
        rgba[..., :3] = np.where(framed_mask[..., None], styled, 0)
        rgba[..., 3] = np.where(framed_mask, 255, 0)
        log.info(
            "diffusion_stylized",
            size=self.resolution,
            steps=p.steps,
            strength=p.strength,
            seconds=round(time.perf_counter() - started, 3),
        )
        return StylizedImage(rgba=rgba, mask=framed_mask)

    def _run_pipeline(self, framed: np.ndarray, seed: int) -> np.ndarray:
        p = self.params
        device = self.pipe.device
        kwargs: dict[str, Any] = {
            "prompt": p.prompt,
            "image": Image.fromarray(framed),
            "strength": p.strength,
            "num_inference_steps": p.steps,
            "generator": make_generator(device, seed),
            "output_type": "np",
        }
        if "guidance_scale" in self._call_args:
            kwargs["guidance_scale"] = p.guidance_scale
        if "negative_prompt" in self._call_args and p.negative_prompt:
            kwargs["negative_prompt"] = p.negative_prompt
        with torch.inference_mode():
            out = self.pipe(**kwargs).images[0]
        out = np.asarray(out, dtype=np.float32)
        if out.shape[:2] != framed.shape[:2]:
            out = cv2.resize(out, framed.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        if not np.isfinite(out).all():
            raise ModelOutputInvalid("the diffusion pipeline returned NaN pixels")
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def native_resolution(pipe: Any) -> int:
    """The square size the pipeline was trained at, rounded to what its latents allow."""
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        sample = getattr(getattr(denoiser, "config", None), "sample_size", 64)
    if isinstance(sample, list | tuple):
        sample = sample[0]
    multiple = factor * 8
    return max(multiple, int(sample) * factor // multiple * multiple)


def load_pipeline(folder: Path, params: DiffusionParams, device: torch.device) -> Any:
    """Load an image-to-image pipeline from a local folder, files only, on ``device``."""
    import diffusers

    check_pipeline_folder(folder)
    dtype = resolve_dtype(params.dtype, device)
    loader = getattr(diffusers, params.pipeline_class, None)
    if loader is None or not hasattr(loader, "from_pretrained"):
        raise ModelUnavailable(f"unknown diffusers pipeline class {params.pipeline_class!r}")
    diffusers.utils.logging.disable_progress_bar()
    kwargs: dict[str, Any] = {_dtype_keyword(diffusers.__version__): dtype}
    kwargs["local_files_only"] = True
    if params.variant:
        kwargs["variant"] = params.variant
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    if "safety_checker" in index:
        # Moderation belongs at intake; SD's checker would blacken a whole order's picture.
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipe = loader.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelUnavailable(
            f"cannot load the diffusion pipeline in {folder}: {exc}", path=str(folder)
        ) from exc
    if "image" not in inspect.signature(pipe.__call__).parameters:
        raise ModelUnavailable(
            f"{type(pipe).__name__} from {folder} is not an image-to-image pipeline",
            path=str(folder),
        )
    make_deterministic(device)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_keyword(version: str) -> str:
    """diffusers 0.36 renamed ``torch_dtype`` to ``dtype`` (the old name warns)."""
    from packaging.version import Version

    return "dtype" if Version(version) >= Version("0.36") else "torch_dtype"


WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model")


def check_pipeline_folder(folder: Path) -> dict[str, Any]:
    """Cheap start-up check of a diffusers folder: every component named by
    ``model_index.json`` is there with its config and weights, and safetensors files are
    complete. Raises ``ModelUnavailable`` naming the folder and the missing file."""
    if not folder.is_dir():
        raise ModelUnavailable(f"diffusion model folder not found: {folder}", path=str(folder))
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelUnavailable(
            f"{index_path} missing: not a diffusers pipeline folder", path=str(index_path)
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelUnavailable(f"{index_path} is not valid JSON: {exc}") from exc
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        library, cls_name = spec
        part = folder / name
        if not part.is_dir():
            raise ModelUnavailable(
                f"diffusion component {name!r} ({cls_name}) missing: {part}", path=str(part)
            )
        if "Scheduler" in cls_name:
            _require(part, ["scheduler_config.json"], name)
        elif "Tokenizer" in cls_name:
            _require(part, list(TOKENIZER_FILES), name)
        elif "Processor" in cls_name or "Extractor" in cls_name:
            _require(part, ["preprocessor_config.json"], name)
        else:
            _require(part, ["config.json"], name)
            weights = [f for f in part.iterdir() if f.suffix in WEIGHT_SUFFIXES]
            if not weights:
                raise ModelUnavailable(
                    f"diffusion component {name!r} has no weights (*.safetensors/*.bin) in {part}",
                    path=str(part),
                )
            for file in weights:
                if file.suffix == ".safetensors":
                    check_safetensors(file)
        del library
    return index


def _require(part: Path, any_of: list[str], name: str) -> None:
    if not any((part / f).is_file() for f in any_of):
        raise ModelUnavailable(
            f"diffusion component {name!r} in {part} lacks {' or '.join(any_of)}",
            path=str(part),
        )
