"""TripoSR's ``config.yaml``, parsed into typed models without importing any class it names.

The official file names Python classes (``*_cls``) that upstream imports dynamically. We never
import from a config: the ``*_cls`` values must equal the known architecture, and anything else
is refused, so a config cannot make the service run code it does not ship. ``${a.b}``
references (OmegaConf style, used by the official file) are resolved here.

Extension (ours): ``image_tokenizer.vit_config`` overrides the DINO ViT-B/16 hyper-parameters
that upstream fetches from the hub; tiny test models use it. Official files do not have it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sculptsvc.errors import ModelUnavailable

EXPECTED_CLASSES: dict[str, str] = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}
"""The one architecture this package implements, by the class paths of the official code."""

DINO_VITB16: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "layer_norm_eps": 1e-12,
}
"""``facebook/dino-vitb16``'s config.json, which upstream downloads; we carry it instead."""

KNOWN_VIT_CONFIGS: dict[str, dict[str, Any]] = {"facebook/dino-vitb16": DINO_VITB16}

_REF = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageTokenizerConfig(_Strict):
    pretrained_model_name_or_path: str = "facebook/dino-vitb16"
    enable_gradient_checkpointing: bool = False
    vit_config: dict[str, Any] | None = None

    def vit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.ViTConfig``."""
        if self.vit_config is not None:
            return {**DINO_VITB16, **self.vit_config}
        try:
            return dict(KNOWN_VIT_CONFIGS[self.pretrained_model_name_or_path])
        except KeyError:
            raise ValueError(
                f"unknown image tokenizer {self.pretrained_model_name_or_path!r}: give "
                "image_tokenizer.vit_config or use facebook/dino-vitb16"
            ) from None


class TriplaneTokenizerConfig(_Strict):
    plane_size: int = Field(gt=0)
    num_channels: int = Field(gt=0)


class BackboneConfig(_Strict):
    num_attention_heads: int = 16
    attention_head_dim: int = 88
    in_channels: int | None = None
    out_channels: int | None = None
    num_layers: int = 1
    dropout: float = 0.0
    norm_num_groups: int = 32
    cross_attention_dim: int | None = None
    attention_bias: bool = False
    activation_fn: Literal["geglu"] = "geglu"
    only_cross_attention: Literal[False] = False
    double_self_attention: Literal[False] = False
    upcast_attention: bool = False
    norm_type: Literal["layer_norm"] = "layer_norm"
    norm_elementwise_affine: bool = True
    gradient_checkpointing: bool = False


class UpsamplerConfig(_Strict):
    in_channels: int
    out_channels: int


class DecoderConfig(_Strict):
    in_channels: int
    n_neurons: int
    n_hidden_layers: int = Field(ge=1)
    activation: Literal["relu", "silu"] = "relu"
    bias: bool = True
    weight_init: str | None = "kaiming_uniform"
    bias_init: str | None = None


class RendererConfig(_Strict):
    radius: float = Field(gt=0)
    feature_reduction: Literal["concat", "mean"] = "concat"
    density_activation: Literal["exp", "trunc_exp", "softplus", "relu", "none"] = "trunc_exp"
    density_bias: float = -1.0
    color_activation: Literal["sigmoid"] = "sigmoid"
    num_samples_per_ray: int = 128
    randomized: bool = False


class TripoSRConfig(_Strict):
    """The whole ``config.yaml`` (class paths checked, references resolved)."""

    cond_image_size: int = Field(gt=0)
    image_tokenizer_cls: str
    image_tokenizer: ImageTokenizerConfig
    tokenizer_cls: str
    tokenizer: TriplaneTokenizerConfig
    backbone_cls: str
    backbone: BackboneConfig
    post_processor_cls: str
    post_processor: UpsamplerConfig
    decoder_cls: str
    decoder: DecoderConfig
    renderer_cls: str
    renderer: RendererConfig

    def check_consistency(self) -> None:
        """Shapes that must agree between parts; a mismatch would fail deep inside torch."""
        width = self.tokenizer.num_channels
        vit_hidden = self.image_tokenizer.vit_kwargs()["hidden_size"]
        rules = [
            (self.backbone.in_channels == width, "backbone.in_channels == tokenizer.num_channels"),
            (self.post_processor.in_channels == width, "post_processor.in_channels == width"),
            (
                self.backbone.cross_attention_dim == vit_hidden,
                "backbone.cross_attention_dim == image tokenizer hidden_size",
            ),
            (
                self.decoder.in_channels
                == self.post_processor.out_channels
                * (3 if self.renderer.feature_reduction == "concat" else 1),
                "decoder.in_channels == post_processor.out_channels x planes",
            ),
            (width % self.backbone.norm_num_groups == 0, "width divisible by norm_num_groups"),
        ]
        broken = [text for ok, text in rules if not ok]
        if broken:
            raise ValueError("inconsistent TripoSR config: " + "; ".join(broken))


def _resolve_refs(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """Replace ``${a.b}`` strings by the value at that path of the root mapping."""
    if depth > 16:
        raise ValueError("config references nest too deep (a cycle?)")
    if isinstance(node, dict):
        return {k: _resolve_refs(v, root, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, root, depth) for v in node]
    if isinstance(node, str) and (match := _REF.match(node)):
        value: Any = root
        for part in match.group(1).split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"unresolvable reference {node!r}")
            value = value[part]
        return _resolve_refs(value, root, depth + 1)
    return node


def parse_config(data: dict[str, Any]) -> TripoSRConfig:
    """Validate a config mapping. Raises ``ValueError`` naming the offending key."""
    resolved = _resolve_refs(data, data)
    for key, expected in EXPECTED_CLASSES.items():
        found = resolved.get(key)
        if found != expected:
            raise ValueError(f"{key} is {found!r}; only {expected!r} is supported")
    try:
        config = TripoSRConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    config.check_consistency()
    return config


def load_config(path: Path) -> TripoSRConfig:
    """Read and validate ``config.yaml``; raises ``ModelUnavailable`` naming file and problem."""
    if not path.is_file():
        raise ModelUnavailable(f"TripoSR config missing: {path}", path=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("top level is not a mapping")
        return parse_config(data)
    except (yaml.YAMLError, ValueError) as exc:
        raise ModelUnavailable(f"TripoSR config {path} is invalid: {exc}", path=str(path)) from exc


def dump_config(config: TripoSRConfig) -> str:
    """YAML text in the official layout (tiny models; round-trips through ``load_config``)."""
    data = config.model_dump(exclude_none=False)
    if data["image_tokenizer"].get("vit_config") is None:
        data["image_tokenizer"].pop("vit_config")
    return yaml.safe_dump(data, sort_keys=False)


OFFICIAL_CONFIG: dict[str, Any] = {
    "cond_image_size": 512,
    "image_tokenizer_cls": EXPECTED_CLASSES["image_tokenizer_cls"],
    "image_tokenizer": {"pretrained_model_name_or_path": "facebook/dino-vitb16"},
    "tokenizer_cls": EXPECTED_CLASSES["tokenizer_cls"],
    "tokenizer": {"plane_size": 32, "num_channels": 1024},
    "backbone_cls": EXPECTED_CLASSES["backbone_cls"],
    "backbone": {
        "in_channels": "${tokenizer.num_channels}",
        "num_attention_heads": 16,
        "attention_head_dim": 64,
        "num_layers": 16,
        "cross_attention_dim": 768,
    },
    "post_processor_cls": EXPECTED_CLASSES["post_processor_cls"],
    "post_processor": {"in_channels": 1024, "out_channels": 40},
    "decoder_cls": EXPECTED_CLASSES["decoder_cls"],
    "decoder": {"in_channels": 120, "n_neurons": 64, "n_hidden_layers": 9, "activation": "silu"},
    "renderer_cls": EXPECTED_CLASSES["renderer_cls"],
    "renderer": {
        "radius": 0.87,
        "feature_reduction": "concat",
        "density_activation": "exp",
        "density_bias": -1.0,
        "num_samples_per_ray": 128,
    },
}
"""The published ``stabilityai/TripoSR`` config.yaml, as data (source of the manifest)."""
