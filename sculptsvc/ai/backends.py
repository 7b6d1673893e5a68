"""Backend choice from settings: which stylizer and reconstructor a worker runs.

    settings.stylizer      classic -> sculptsvc.stylize.classic.ClassicStylizer
                           diffusion -> DiffusionStylizer(settings.diffusion_model_dir)
    settings.reconstructor classic -> sculptsvc.reconstruct.classic.ClassicReconstructor
                           triposr -> TripoSRReconstructor(settings.triposr_model_dir)
                           triposg -> TripoSGReconstructor(settings.triposg_model_dir)

torch, diffusers and transformers are imported only when an AI backend is chosen, so the
classic service starts without them. ``check_backends`` is the cheap start-up gate (files,
configs, tensor names and shapes, no weights loaded); ``load_*`` then load the models once per
worker and raise the same typed ``ModelUnavailable`` if anything is still wrong. Either way a
bad model folder stops the service before it consumes an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sculptsvc.errors import ConfigurationError, ModelUnavailable
from sculptsvc.logging import get_logger
from sculptsvc.reconstruct.base import Reconstructor
from sculptsvc.settings import Settings
from sculptsvc.stylize.base import Stylizer

if TYPE_CHECKING:
    from sculptsvc.ai.triposg.reconstructor import TripoSGParams

log = get_logger(__name__)


@dataclass(frozen=True)
class BackendCheck:
    """What ``check_backends`` verified for one stage."""

    stage: str
    backend: str
    folder: Path | None = None
    detail: str = ""


def _folder(settings: Settings, field: str, backend: str) -> Path:
    folder = getattr(settings, field)
    if folder is None:
        env = "SCULPT_" + field.upper()
        raise ModelUnavailable(f"{backend} backend chosen but {env} is not set", setting=env)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelUnavailable(
            f"{backend} model folder {folder} (SCULPT_{field.upper()}) does not exist",
            path=str(folder),
        )
    return folder


def load_stylizer(settings: Settings) -> Stylizer:
    """The configured stylizer, weights loaded (once per worker process)."""
    if settings.stylizer == "classic":
        from sculptsvc.stylize.classic import ClassicStylizer

        return ClassicStylizer()
    _limit_gpu_memory(settings)
    folder = _folder(settings, "diffusion_model_dir", "diffusion")
    from sculptsvc.ai.diffusion import DiffusionParams, DiffusionStylizer

    return DiffusionStylizer.from_folder(
        folder, settings.device, DiffusionParams.from_settings(settings)
    )


def load_reconstructor(settings: Settings) -> Reconstructor:
    """The configured reconstructor, weights loaded (once per worker process)."""
    if settings.reconstructor == "classic":
        from sculptsvc.reconstruct.classic import ClassicReconstructor

        return ClassicReconstructor()
    _limit_gpu_memory(settings)
    if settings.reconstructor == "triposg":
        folder = _folder(settings, "triposg_model_dir", "triposg")
        from sculptsvc.ai.triposg.reconstructor import TripoSGReconstructor

        return TripoSGReconstructor.from_folder(folder, settings.device, triposg_params(settings))
    folder = _folder(settings, "triposr_model_dir", "triposr")
    from sculptsvc.ai.triposr.reconstructor import TripoSRParams, TripoSRReconstructor

    return TripoSRReconstructor.from_folder(folder, settings.device, TripoSRParams())


def triposg_params(settings: Settings) -> TripoSGParams:
    """The TripoSG knobs of the one Settings class."""
    from pydantic import ValidationError

    from sculptsvc.ai.triposg.reconstructor import TripoSGParams

    try:
        return TripoSGParams(
            steps=settings.triposg_steps,
            guidance_scale=settings.triposg_guidance_scale,
            num_tokens=settings.triposg_latent_tokens,
            resolution=settings.triposg_grid_resolution,
            chunk_points=settings.triposg_chunk_points,
            dtype=settings.triposg_dtype,
        )
    except ValidationError as exc:
        raise ConfigurationError(f"TripoSG settings (SCULPT_TRIPOSG_*) are invalid: {exc}") from exc


def _limit_gpu_memory(settings: Settings) -> None:
    if settings.gpu_memory_limit_gb is not None:
        from sculptsvc.ai.torchutil import limit_gpu_memory, resolve_device

        limit_gpu_memory(resolve_device(settings.device), settings.gpu_memory_limit_gb)


def check_backends(settings: Settings) -> list[BackendCheck]:
    """Start-up gate: raise ``ModelUnavailable`` (naming folder and file or key) unless every
    configured AI backend's folder is complete and matches its config. Loads no weights."""
    checks: list[BackendCheck] = []
    if settings.stylizer == "diffusion":
        folder = _folder(settings, "diffusion_model_dir", "diffusion")
        from sculptsvc.ai.diffusion import check_pipeline_folder

        index = check_pipeline_folder(folder)
        checks.append(
            BackendCheck("stylize", "diffusion", folder, str(index.get("_class_name", "")))
        )
    else:
        checks.append(BackendCheck("stylize", settings.stylizer))
    if settings.reconstructor == "triposr":
        folder = _folder(settings, "triposr_model_dir", "triposr")
        from sculptsvc.ai.triposr.weights import check_folder

        config = check_folder(folder)
        checks.append(
            BackendCheck("reconstruct", "triposr", folder, f"{config.backbone.num_layers} blocks")
        )
    elif settings.reconstructor == "triposg":
        folder = _folder(settings, "triposg_model_dir", "triposg")
        from sculptsvc.ai.triposg.weights import check_folder as check_triposg_folder

        sg_config = check_triposg_folder(folder)
        triposg_params(settings)  # grid resolution vs coarse pass, checked before any order
        checks.append(
            BackendCheck(
                "reconstruct",
                "triposg",
                folder,
                f"{sg_config.transformer.num_layers} blocks x {sg_config.transformer.width}",
            )
        )
    else:
        checks.append(BackendCheck("reconstruct", settings.reconstructor))
    if settings.device == "cuda" and (settings.stylizer, settings.reconstructor) != (
        "classic",
        "classic",
    ):
        from sculptsvc.ai.torchutil import resolve_device

        resolve_device("cuda")
    for check in checks:
        log.info(
            "backend_checked",
            stage=check.stage,
            backend=check.backend,
            folder=str(check.folder) if check.folder else None,
            detail=check.detail,
        )
    return checks
