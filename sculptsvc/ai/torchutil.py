"""Device and dtype choice shared by the AI backends (imports torch: load it only for them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from sculptsvc.errors import ConfigurationError

Model = TypeVar("Model", bound=torch.nn.Module)
DeviceName = Literal["auto", "cpu", "cuda"]
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(name: DeviceName) -> torch.device:
    """``auto`` picks the first CUDA device when there is one; ``cuda`` without one is an error
    at start-up rather than a silent 100x slower CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("SCULPT_DEVICE=cuda but torch sees no CUDA device")
    return torch.device(name)


def resolve_dtype(name: DtypeName, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on GPUs that have it, fp16 on older GPUs, fp32 on the CPU (where half
    precision is slow and, for some kernels, missing)."""
    if name != "auto":
        return _DTYPES[name]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on the device the noise is drawn on, so a seed means the same noise."""
    return torch.Generator(device=device).manual_seed(int(seed) % (2**63))


def make_deterministic(device: torch.device) -> None:
    """Replays must repeat bit for bit: no autotuned (run-to-run varying) cuDNN kernels."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def limit_gpu_memory(device: torch.device, limit_gb: float) -> None:
    """Cap this process's CUDA caching allocator at ``limit_gb`` (no-op off CUDA): a stage
    that needs more raises torch's out-of-memory error instead of starving other workers."""
    if device.type != "cuda":
        return
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = min(1.0, limit_gb * 2**30 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)


def load_from_folder(
    folder: Path,
    device: DeviceName,
    dtype: DtypeName,
    params: Mapping[str, Any],
    loader: Callable[[Path, torch.device, torch.dtype], Model],
    event: str,
) -> tuple[Model, str]:
    """Resolve device and dtype, load a model folder, fingerprint it with its params and log
    one ``event`` line (parameters, seconds, fingerprint). Returns (model, fingerprint)."""
    from sculptsvc.ai.identity import folder_fingerprint
    from sculptsvc.logging import get_logger

    dev = resolve_device(device)
    make_deterministic(dev)
    started = time.perf_counter()
    model = loader(folder, dev, resolve_dtype(dtype, dev))
    fingerprint = folder_fingerprint(folder, params)
    get_logger(__name__).info(
        event,
        folder=str(folder),
        device=str(dev),
        parameters=sum(p.numel() for p in model.parameters()),
        seconds=round(time.perf_counter() - started, 3),
        fingerprint=fingerprint[:16],
    )
    return model, fingerprint


class OnDevice:
    """Mixin for backends holding a ``model``: where and in what precision it runs."""

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
