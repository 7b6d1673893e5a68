"""Backend choice and the start-up gate (``check_backends``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sculptsvc.ai.backends import check_backends, load_reconstructor, load_stylizer
from sculptsvc.errors import ModelUnavailable
from sculptsvc.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.ai


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("diffusers")
    from sculptsvc.ai.tiny import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("models"))


def ai_settings(models: dict[str, Path], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "stylizer": "diffusion",
        "reconstructor": "triposr",
        "diffusion_model_dir": models["diffusion"],
        "triposr_model_dir": models["triposr"],
        "device": "cpu",
    }
    return Settings(**{**values, **overrides})


def test_classic_backends_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from sculptsvc.ai.backends import check_backends, load_reconstructor, load_stylizer\n"
        "from sculptsvc.settings import Settings\n"
        "s = Settings(stylizer='classic', reconstructor='classic')\n"
        "check_backends(s)\n"
        "print(load_stylizer(s).name, load_reconstructor(s).name, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1].split() == ["classic", "classic", "False"]


def test_missing_folder_setting_is_named() -> None:
    with pytest.raises(ModelUnavailable, match="SCULPT_DIFFUSION_MODEL_DIR is not set"):
        check_backends(Settings(stylizer="diffusion"))
    with pytest.raises(ModelUnavailable, match="SCULPT_TRIPOSR_MODEL_DIR is not set"):
        check_backends(Settings(reconstructor="triposr"))


def test_nonexistent_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelUnavailable, match=str(missing)):
        check_backends(Settings(reconstructor="triposr", triposr_model_dir=missing))


def test_check_passes_on_complete_folders(tiny_models: dict[str, Path]) -> None:
    checks = check_backends(ai_settings(tiny_models))
    assert [(c.stage, c.backend, c.folder) for c in checks] == [
        ("stylize", "diffusion", tiny_models["diffusion"]),
        ("reconstruct", "triposr", tiny_models["triposr"]),
    ]


def test_check_fails_at_start_on_mismatching_weights(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "triposr"
    shutil.copytree(tiny_models["triposr"], broken)
    config = (broken / "config.yaml").read_text()
    (broken / "config.yaml").write_text(config.replace("n_neurons: 32", "n_neurons: 16"))
    with pytest.raises(ModelUnavailable, match=r"decoder\.layers\.0\.weight") as info:
        check_backends(ai_settings(tiny_models, triposr_model_dir=broken))
    assert str(broken / "model.safetensors") in str(info.value)


def test_load_builds_the_configured_ai_backends(tiny_models: dict[str, Path]) -> None:
    settings = ai_settings(tiny_models)
    stylizer = load_stylizer(settings)
    reconstructor = load_reconstructor(settings)
    assert (stylizer.name, reconstructor.name) == ("diffusion", "triposr")


def test_cuda_without_a_gpu_fails_at_start(tiny_models: dict[str, Path]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    with pytest.raises(Exception, match="CUDA"):
        check_backends(ai_settings(tiny_models, device="cuda"))


def test_triposg_backend_is_checked_and_loaded_from_settings(tiny_models: dict[str, Path]) -> None:
    settings = ai_settings(
        tiny_models,
        reconstructor="triposg",
        triposg_model_dir=tiny_models["triposg"],
        triposg_steps=3,
        triposg_guidance_scale=4.0,
        triposg_latent_tokens=64,
        triposg_grid_resolution=128,
        triposg_dtype="float32",
        triposg_chunk_points=8192,
    )
    checks = check_backends(settings)
    assert (checks[1].stage, checks[1].backend, checks[1].folder) == (
        "reconstruct",
        "triposg",
        tiny_models["triposg"],
    )
    reconstructor = load_reconstructor(settings)
    assert reconstructor.name == "triposg"
    params = reconstructor.params  # type: ignore[attr-defined]
    assert (params.steps, params.guidance_scale, params.num_tokens) == (3, 4.0, 64)
    assert (params.resolution, params.chunk_points, params.dtype) == (128, 8192, "float32")


def test_triposg_grid_that_the_coarse_pass_cannot_reach_fails_at_start(
    tiny_models: dict[str, Path],
) -> None:
    from sculptsvc.errors import ConfigurationError

    settings = ai_settings(
        tiny_models,
        reconstructor="triposg",
        triposg_model_dir=tiny_models["triposg"],
        triposg_grid_resolution=100,
    )
    with pytest.raises(ConfigurationError, match="power of two"):
        check_backends(settings)


def test_triposg_without_its_folder_setting_is_named() -> None:
    with pytest.raises(ModelUnavailable, match="SCULPT_TRIPOSG_MODEL_DIR"):
        check_backends(Settings(reconstructor="triposg"))
