"""TripoSG release folders on disk: check and load the weights; the committed manifest.

Each weighted part folder (``transformer/``, ``vae/``, ``image_encoder_dinov2/``) holds its
weights as diffusers / transformers ``save_pretrained`` write them: one ``*.safetensors``
file, a sharded set with its ``*.safetensors.index.json``, or a ``*.bin`` state dict read
with ``torch.load(weights_only=True)`` (no pickled code runs). Files are read straight from
the folder: no hub client is involved, so nothing can be downloaded.

``check_folder`` compares every tensor's name and shape with the networks the configs
describe (safetensors headers or a memory map; no weights loaded), so a wrong or incomplete
folder fails at start-up, naming the file and the tensors at fault.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sculptsvc.ai.safetensors_check import check_safetensors, compare_tensor_shapes
from sculptsvc.ai.triposg.config import (
    OFFICIAL_CONFIG,
    TripoSGConfig,
    config_files,
    load_config,
)
from sculptsvc.ai.triposg.model import PARTS, TripoSGModel
from sculptsvc.errors import ModelUnavailable

WEIGHT_STEMS = {"transformer": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model"}
"""File stem per part (transformers parts use ``model``)."""
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "triposg_manifest.json"


def _stem(part: str) -> str:
    return WEIGHT_STEMS.get(part, "model")


def weight_files(part_dir: Path, part: str) -> list[Path]:
    """The weight files of one part, in preference order: safetensors, sharded, bin."""
    stem = _stem(part)
    single = part_dir / f"{stem}.safetensors"
    if single.is_file():
        return [single]
    index = part_dir / f"{stem}.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"{index} is not a shard index: {exc}", path=str(index)) from exc
        shards = [part_dir / name for name in sorted(set(weight_map.values()))]
        missing = [s for s in shards if not s.is_file()]
        if missing:
            raise ModelUnavailable(f"TripoSG shard missing: {missing[0]}", path=str(missing[0]))
        return shards
    legacy = part_dir / f"{stem}.bin"
    if legacy.is_file():
        return [legacy]
    raise ModelUnavailable(
        f"TripoSG {part} weights missing in {part_dir}: expected {stem}.safetensors, "
        f"a sharded {stem}.safetensors.index.json or {stem}.bin",
        path=str(part_dir),
    )


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # any unreadable file is the same operator error
        raise ModelUnavailable(f"cannot read {path}: {exc}", path=str(path)) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelUnavailable(f"{path} is not a plain state dict of tensors", path=str(path))
    return state


def read_shapes(files: list[Path]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            shapes.update(check_safetensors(path))
        else:
            shapes.update({k: list(v.shape) for k, v in _read_bin(path).items()})
    return shapes


def build_model(config: TripoSGConfig, device: torch.device | str = "meta") -> TripoSGModel:
    with torch.device(device):
        return TripoSGModel(config)


def part_manifest(model: TripoSGModel, part: str) -> OrderedDict[str, list[int]]:
    module = getattr(model, part)
    return OrderedDict((k, list(v.shape)) for k, v in module.state_dict().items())


def check_folder(folder: Path) -> TripoSGConfig:
    """Start-up check: index and configs valid, every part's tensors present and matching."""
    config = load_config(folder)
    model = build_model(config, "meta")
    for part in PARTS:
        files = weight_files(folder / part, part)
        compare_tensor_shapes(
            part_manifest(model, part),
            read_shapes(files),
            files[0],
            f"TripoSG {part} weights in {folder / part}",
            folder / part / "config.json",
        )
    return config


def load_model(folder: Path, device: torch.device, dtype: torch.dtype) -> TripoSGModel:
    """Build the networks for ``folder``'s configs and load every part strictly."""
    config = check_folder(folder)
    model = build_model(config, "meta")
    for part in PARTS:
        state: dict[str, torch.Tensor] = {}
        for path in weight_files(folder / part, part):
            state.update(
                load_file(str(path), device="cpu")
                if path.suffix == ".safetensors"
                else _read_bin(path)
            )
        getattr(model, part).load_state_dict(state, strict=True, assign=True)
    # The Fourier frequencies are a non-persistent buffer: rebuild it for real.
    vae_cfg = config.vae
    freqs = 2.0 ** torch.arange(vae_cfg.embed_frequency, dtype=torch.float32)
    model.vae.embedder.frequencies = freqs * torch.pi if vae_cfg.embed_include_pi else freqs
    for name, buf in model.named_buffers():
        if buf.is_meta:
            raise ModelUnavailable(f"buffer {name} was not restored from the weights")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def save_folder(model: TripoSGModel, folder: Path) -> None:
    """Write the official release layout (tiny models): configs + one safetensors per part."""
    for rel, data in config_files(model.cfg).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for part in PARTS:
        state = {
            k: v.detach().contiguous().cpu() for k, v in getattr(model, part).state_dict().items()
        }
        save_file(state, str(folder / part / f"{_stem(part)}.safetensors"))


def official_manifest() -> dict[str, object]:
    """Names and shapes of the published full-size model, derived on the meta device."""
    model = build_model(OFFICIAL_CONFIG, "meta")
    parts = {part: part_manifest(model, part) for part in PARTS}
    counts = {
        part: sum(int(torch.Size(s).numel()) for s in shapes.values())
        for part, shapes in parts.items()
    }
    return {
        "model": "VAST-AI/TripoSG",
        "source": "the release's configs (code defaults, DINOv2-large); official key names",
        "num_tensors": {part: len(shapes) for part, shapes in parts.items()},
        "num_parameters": counts,
        "parts": parts,
    }


def write_manifest(path: Path = MANIFEST_PATH) -> None:
    """One tensor per line, so a review diff shows exactly which tensors changed."""
    manifest = official_manifest()
    parts = manifest.pop("parts")
    assert isinstance(parts, dict)
    head = json.dumps(manifest, indent=1)[:-2]
    blocks = []
    for part, shapes in parts.items():
        body = ",\n".join(f"   {json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items())
        blocks.append(f"  {json.dumps(part)}: {{\n{body}\n  }}")
    path.write_text(f'{head},\n "parts": {{\n' + ",\n".join(blocks) + "\n }\n}\n", encoding="utf-8")


def read_manifest(path: Path = MANIFEST_PATH) -> dict[str, object]:
    return json.loads(path.read_text(encoding="utf-8"))
