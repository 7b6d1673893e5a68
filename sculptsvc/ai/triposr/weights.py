"""TripoSR folders on disk: find, check and load the weights; the committed manifest.

A folder holds ``config.yaml`` and the weights, either as the official ``model.ckpt`` (a plain
state dict, read with ``torch.load(weights_only=True)``: no pickle code runs) or as
``model.safetensors``. ``check_folder`` compares every tensor's name and shape with the model
the config describes, reading only headers (safetensors) or a memory map (ckpt), so a wrong
folder fails at start-up in seconds instead of at the first order.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sculptsvc.ai.safetensors_check import check_safetensors, compare_tensor_shapes
from sculptsvc.ai.triposr.config import (
    OFFICIAL_CONFIG,
    TripoSRConfig,
    dump_config,
    load_config,
    parse_config,
)
from sculptsvc.ai.triposr.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TripoSRModel,
    parameter_manifest,
)
from sculptsvc.errors import ModelUnavailable

CONFIG_NAME = "config.yaml"
WEIGHT_NAMES = ("model.safetensors", "model.ckpt")
"""Preference order: safetensors maps lazily and cannot carry code."""
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "triposr_manifest.json"


def weights_path(folder: Path) -> Path:
    """The weights file of a folder; ``ModelUnavailable`` names what was looked for."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ModelUnavailable(
        f"TripoSR weights missing in {folder}: expected one of {', '.join(WEIGHT_NAMES)}",
        path=str(folder),
    )


def build_model(config: TripoSRConfig, device: torch.device | str = "meta") -> TripoSRModel:
    """The network for a config, uninitialised when on the meta device."""
    with torch.device(device):
        return TripoSRModel(config)


def expected_shapes(config: TripoSRConfig) -> OrderedDict[str, list[int]]:
    return parameter_manifest(build_model(config, "meta"))


def read_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes of a weights file without reading the tensors' data."""
    if path.suffix == ".safetensors":
        return check_safetensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # any unreadable file is the same operator error
        raise ModelUnavailable(f"cannot read {path}: {exc}", path=str(path)) from exc
    state = _unwrap(state, path)
    return {k: list(v.shape) for k, v in state.items()}


def _unwrap(state: object, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(state, Mapping) and "state_dict" in state and len(state) <= 4:
        state = state["state_dict"]  # Lightning-style wrapper
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelUnavailable(f"{path} is not a plain state dict of tensors", path=str(path))
    return state


def compare_shapes(
    expected: Mapping[str, list[int]], found: Mapping[str, list[int]], source: Path
) -> None:
    """Raise ``ModelUnavailable`` naming missing, unexpected and mis-shaped keys."""
    compare_tensor_shapes(
        expected, found, source, f"TripoSR weights {source}", source.parent / CONFIG_NAME
    )


def check_folder(folder: Path) -> TripoSRConfig:
    """Start-up check of a TripoSR folder: config valid, weights present and matching."""
    if not folder.is_dir():
        raise ModelUnavailable(f"TripoSR model folder not found: {folder}", path=str(folder))
    config = load_config(folder / CONFIG_NAME)
    source = weights_path(folder)
    compare_shapes(expected_shapes(config), read_shapes(source), source)
    return config


def load_model(folder: Path, device: torch.device, dtype: torch.dtype) -> TripoSRModel:
    """Build the model for ``folder``'s config and load its weights strictly."""
    config = check_folder(folder)
    source = weights_path(folder)
    if source.suffix == ".safetensors":
        state = load_file(str(source), device="cpu")
    else:
        raw = torch.load(source, map_location="cpu", weights_only=True, mmap=True)
        state = dict(_unwrap(raw, source))
    model = build_model(config, "meta")
    model.load_state_dict(state, strict=True, assign=True)
    # Non-persistent buffers (ImageNet mean/std) are not in the file: rebuild them for real.
    model = _materialise_buffers(model)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _materialise_buffers(model: TripoSRModel) -> TripoSRModel:
    tok = model.image_tokenizer
    tok.image_mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    tok.image_std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    for name, buf in model.named_buffers():
        if buf.is_meta:
            raise ModelUnavailable(f"buffer {name} was not restored from the weights")
    return model


def save_folder(model: TripoSRModel, folder: Path, *, ckpt: bool = True) -> None:
    """Write config.yaml + model.safetensors (+ model.ckpt) in the official layout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(dump_config(model.cfg), encoding="utf-8")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    if ckpt:
        torch.save(state, folder / "model.ckpt")


def official_manifest() -> dict[str, object]:
    """The manifest of the published full-size model, derived from its config."""
    shapes = expected_shapes(parse_config(OFFICIAL_CONFIG))
    total = sum(int(torch.Size(s).numel()) for s in shapes.values())
    return {
        "model": "stabilityai/TripoSR",
        "source": "config.yaml of the published checkpoint; official state-dict key names",
        "num_tensors": len(shapes),
        "num_parameters": total,
        "parameters": shapes,
    }


def write_manifest(path: Path = MANIFEST_PATH) -> None:
    """One parameter per line, so a review diff shows exactly which tensors changed."""
    manifest = official_manifest()
    shapes = manifest.pop("parameters")
    assert isinstance(shapes, dict)
    head = json.dumps(manifest, indent=1)[:-2]
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items())
    path.write_text(f'{head},\n "parameters": {{\n{body}\n }}\n}}\n', encoding="utf-8")


def read_manifest(path: Path = MANIFEST_PATH) -> dict[str, object]:
    return json.loads(path.read_text(encoding="utf-8"))
