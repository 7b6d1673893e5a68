"""The official TripoSG release folder, read as data: ``model_index.json`` and each part's config.

    model_index.json                    class names of the five parts (checked, never imported)
    transformer/config.json             TripoSGDiTModel hyper-parameters
    transformer/diffusion_pytorch_model.safetensors (or sharded *.index.json, or .bin)
    vae/config.json                     TripoSGVAEModel hyper-parameters (+ weights as above)
    image_encoder_dinov2/config.json    transformers Dinov2Config (+ model.safetensors)
    feature_extractor_dinov2/preprocessor_config.json   BitImageProcessor settings
    scheduler/scheduler_config.json     RectifiedFlowScheduler settings

Only the part names and class names of the official layout are accepted, so a folder can
never make the service import or run code it does not ship. Each config is validated into a
typed model (unknown hyper-parameters that would change the network are refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sculptsvc.ai.vit import ViTSpec
from sculptsvc.errors import ModelUnavailable

EXPECTED_PARTS: dict[str, tuple[str, str]] = {
    "transformer": ("TripoSGDiTModel", "config.json"),
    "vae": ("TripoSGVAEModel", "config.json"),
    "image_encoder_dinov2": ("Dinov2Model", "config.json"),
    "feature_extractor_dinov2": ("BitImageProcessor", "preprocessor_config.json"),
    "scheduler": ("RectifiedFlowScheduler", "scheduler_config.json"),
}
"""Part folder -> (class name in model_index.json, config file)."""
PIPELINE_CLASS = "TripoSGPipeline"


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TransformerConfig(_Config):
    """``TripoSGDiTModel``: a DiT with long skips, QK-norm, cross-attention to DINOv2."""

    num_attention_heads: int = Field(16, gt=0)
    width: int = Field(2048, gt=0)
    in_channels: int = Field(64, gt=0)
    num_layers: int = Field(21, gt=0)
    cross_attention_dim: int = Field(1024, gt=0)
    use_cross_attention_2: Literal[False] = False


class VAEConfig(_Config):
    """``TripoSGVAEModel``: perceiver-style SDF VAE (latent tokens -> SDF at query points)."""

    in_channels: int = Field(3, gt=0)
    latent_channels: int = Field(64, gt=0)
    num_attention_heads: int = Field(8, gt=0)
    width_encoder: int = Field(512, gt=0)
    width_decoder: int = Field(1024, gt=0)
    num_layers_encoder: int = Field(8, gt=0)
    num_layers_decoder: int = Field(16, gt=0)
    embedding_type: Literal["frequency"] = "frequency"
    embed_frequency: int = Field(8, ge=0)
    embed_include_pi: bool = False


class SchedulerConfig(_Config):
    """``RectifiedFlowScheduler``: Euler steps of a rectified flow, optional time shift."""

    num_train_timesteps: int = Field(1000, gt=0)
    shift: float = Field(1.0, gt=0)
    use_dynamic_shifting: Literal[False] = False


class Size(_Config):
    shortest_edge: int | None = None
    height: int | None = None
    width: int | None = None


class ImageProcessorConfig(_Config):
    """The ``BitImageProcessor`` fields TripoSG's DINOv2 input depends on."""

    do_resize: bool = True
    size: Size = Size(shortest_edge=224)
    resample: Literal[3] = 3
    """PIL bicubic (the only value the release uses; others would silently change pixels)."""
    do_center_crop: bool = True
    crop_size: Size = Size(height=224, width=224)
    do_rescale: bool = True
    rescale_factor: float = 1.0 / 255.0
    do_normalize: bool = True
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    do_convert_rgb: bool = True


class Dinov2Config(ViTSpec):
    """transformers ``Dinov2Config`` (model_type must be ``dinov2``)."""

    model_type: Literal["dinov2"] = "dinov2"
    patch_size: int = Field(14, gt=0)
    image_size: int = Field(518, gt=0)
    layer_norm_eps: float = 1e-6
    apply_layernorm: Literal[True] = True


class TripoSGConfig(_Config):
    """The whole release folder's configuration."""

    transformer: TransformerConfig
    vae: VAEConfig
    image_encoder: Dinov2Config
    image_processor: ImageProcessorConfig
    scheduler: SchedulerConfig

    def check_consistency(self) -> None:
        rules = [
            (
                self.transformer.in_channels == self.vae.latent_channels,
                "transformer.in_channels == vae.latent_channels",
            ),
            (
                self.transformer.cross_attention_dim == self.image_encoder.hidden_size,
                "transformer.cross_attention_dim == image encoder hidden_size",
            ),
            (
                self.transformer.width % self.transformer.num_attention_heads == 0,
                "transformer.width divisible by its heads",
            ),
            (
                self.vae.width_decoder % self.vae.num_attention_heads == 0
                and self.vae.width_encoder % self.vae.num_attention_heads == 0,
                "vae widths divisible by its heads",
            ),
        ]
        broken = [text for ok, text in rules if not ok]
        if broken:
            raise ValueError("inconsistent TripoSG config: " + "; ".join(broken))


OFFICIAL_CONFIG = TripoSGConfig(
    transformer=TransformerConfig(),
    vae=VAEConfig(),
    image_encoder=Dinov2Config(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0
    ),
    image_processor=ImageProcessorConfig(),
    scheduler=SchedulerConfig(),
)
"""The published ``VAST-AI/TripoSG`` sizes (the code's defaults; DINOv2-large, 1024 wide),
the source of the committed manifest."""


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelUnavailable(f"TripoSG file missing: {path}", path=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelUnavailable(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{path} does not hold a JSON object", path=str(path))
    return data


def check_model_index(folder: Path) -> dict[str, Any]:
    """``model_index.json`` names exactly the official parts and classes (module paths vary
    between forks and are ignored: nothing is imported from them)."""
    index_path = folder / "model_index.json"
    index = _read_json(index_path)
    if index.get("_class_name") != PIPELINE_CLASS:
        raise ModelUnavailable(
            f"{index_path}: _class_name is {index.get('_class_name')!r}, not {PIPELINE_CLASS!r}",
            path=str(index_path),
        )
    for part, (cls_name, _) in EXPECTED_PARTS.items():
        spec = index.get(part)
        if not (isinstance(spec, list) and len(spec) == 2 and spec[1] == cls_name):
            raise ModelUnavailable(
                f"{index_path}: part {part!r} is {spec!r}, expected [..., {cls_name!r}]",
                path=str(index_path),
            )
    extra = sorted(k for k in index if not k.startswith("_") and k not in EXPECTED_PARTS)
    if extra:
        raise ModelUnavailable(f"{index_path}: unknown parts {extra}", path=str(index_path))
    return index


def _class_checked(data: dict[str, Any], path: Path, cls_name: str) -> dict[str, Any]:
    found = data.get("_class_name") or data.get("image_processor_type")
    if found is not None and found != cls_name:
        raise ModelUnavailable(f"{path}: class {found!r}, expected {cls_name!r}", path=str(path))
    return data


def load_config(folder: Path) -> TripoSGConfig:
    """Validate the folder's index and part configs; ``ModelUnavailable`` names the file."""
    if not folder.is_dir():
        raise ModelUnavailable(f"TripoSG model folder not found: {folder}", path=str(folder))
    check_model_index(folder)
    parts: dict[str, Any] = {}
    for part, (cls_name, config_name) in EXPECTED_PARTS.items():
        path = folder / part / config_name
        parts[part] = (path, _class_checked(_read_json(path), path, cls_name))
    try:
        config = TripoSGConfig(
            transformer=TransformerConfig.model_validate(parts["transformer"][1]),
            vae=VAEConfig.model_validate(parts["vae"][1]),
            image_encoder=Dinov2Config.model_validate(parts["image_encoder_dinov2"][1]),
            image_processor=ImageProcessorConfig.model_validate(
                parts["feature_extractor_dinov2"][1]
            ),
            scheduler=SchedulerConfig.model_validate(parts["scheduler"][1]),
        )
        config.check_consistency()
    except (ValidationError, ValueError) as exc:
        raise ModelUnavailable(f"TripoSG config in {folder} is invalid: {exc}") from exc
    return config


def config_files(config: TripoSGConfig) -> dict[str, dict[str, Any]]:
    """The part config files for ``config`` in the official layout (tiny models)."""
    dinov2 = config.image_encoder.model_dump(exclude={"intermediate_size"})
    return {
        "model_index.json": {
            "_class_name": PIPELINE_CLASS,
            "transformer": ["triposg.models.transformers", "TripoSGDiTModel"],
            "vae": ["triposg.models.autoencoders", "TripoSGVAEModel"],
            "image_encoder_dinov2": ["transformers", "Dinov2Model"],
            "feature_extractor_dinov2": ["transformers", "BitImageProcessor"],
            "scheduler": ["triposg.schedulers", "RectifiedFlowScheduler"],
        },
        "transformer/config.json": {
            "_class_name": "TripoSGDiTModel",
            **config.transformer.model_dump(),
        },
        "vae/config.json": {"_class_name": "TripoSGVAEModel", **config.vae.model_dump()},
        "image_encoder_dinov2/config.json": {"architectures": ["Dinov2Model"], **dinov2},
        "feature_extractor_dinov2/preprocessor_config.json": {
            "image_processor_type": "BitImageProcessor",
            **config.image_processor.model_dump(),
        },
        "scheduler/scheduler_config.json": {
            "_class_name": "RectifiedFlowScheduler",
            **config.scheduler.model_dump(),
        },
    }
