"""Diffusion stylizer on a tiny random pipeline saved in the real diffusers layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from sculptsvc.ai.diffusion import (
    DiffusionParams,
    DiffusionStylizer,
    check_pipeline_folder,
    classic_subject_mask,
    frame_subject,
)
from sculptsvc.ai.tiny import make_tiny_diffusion
from sculptsvc.errors import InvalidImage, ModelUnavailable, NoSubject

pytestmark = pytest.mark.ai

FAST = DiffusionParams(steps=4, strength=0.5)


def picture(height: int = 90, width: int = 120) -> np.ndarray:
    """A red-green ellipse cut out by alpha (what an e-commerce PNG looks like)."""
    yy, xx = np.mgrid[:height, :width]
    inside = ((yy - height / 2) / (height / 2.5)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 < 1
    image = np.zeros((height, width, 4), dtype=np.uint8)
    image[..., 0] = 200
    image[..., 1] = (xx * 2).clip(0, 255)
    image[..., 3] = np.where(inside, 255, 0)
    return image


@pytest.fixture(scope="module")
def tiny_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("diffusion")
    make_tiny_diffusion(folder)
    return folder


@pytest.fixture(scope="module")
def stylizer(tiny_pipeline_dir: Path) -> DiffusionStylizer:
    return DiffusionStylizer.from_folder(tiny_pipeline_dir, "cpu", FAST)


def test_tiny_folder_has_the_real_layout(tiny_pipeline_dir: Path) -> None:
    index = json.loads((tiny_pipeline_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder"):
        assert list((tiny_pipeline_dir / part).glob("*.safetensors")), part
    assert (tiny_pipeline_dir / "tokenizer" / "tokenizer_config.json").is_file()
    assert (tiny_pipeline_dir / "scheduler" / "scheduler_config.json").is_file()
    assert check_pipeline_folder(tiny_pipeline_dir)["_class_name"] == "StableDiffusionPipeline"


def test_loads_as_an_image_to_image_pipeline_in_fp32_on_cpu(stylizer: DiffusionStylizer) -> None:
    assert type(stylizer.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert str(stylizer.pipe.dtype) == "torch.float32"
    assert stylizer.resolution == 64  # unet sample 32 x vae factor 2
    assert len(stylizer.fingerprint) == 64


def test_stylize_keeps_the_silhouette_exactly(stylizer: DiffusionStylizer) -> None:
    image = picture()
    out = stylizer.stylize(image, seed=5)
    size = stylizer.resolution
    assert out.rgba.shape == (size, size, 4) and out.rgba.dtype == np.uint8
    mask = classic_subject_mask(image, 5)
    _, expected = frame_subject(image, mask, size, FAST.foreground_ratio, FAST.background_grey)
    np.testing.assert_array_equal(out.mask, expected)
    np.testing.assert_array_equal(out.rgba[..., 3], np.where(expected, 255, 0))
    assert (out.rgba[~out.mask, :3] == 0).all()
    assert out.rgba[out.mask, :3].std() > 0  # the render has content


def test_same_seed_same_pixels_other_seed_other_pixels(stylizer: DiffusionStylizer) -> None:
    image = picture()
    a = stylizer.stylize(image, seed=11).rgba
    b = stylizer.stylize(image, seed=11).rgba
    c = stylizer.stylize(image, seed=12).rgba
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rejects_bad_images_and_missing_subjects(stylizer: DiffusionStylizer) -> None:
    with pytest.raises(InvalidImage):
        stylizer.stylize(np.zeros((10, 10), np.float32), seed=0)
    no_subject = DiffusionStylizer(
        stylizer.pipe, FAST, mask_fn=lambda image, seed: np.zeros(image.shape[:2], bool)
    )
    with pytest.raises(NoSubject):
        no_subject.stylize(picture(), seed=0)


def test_frame_subject_centres_at_the_ratio() -> None:
    image = picture(60, 200)
    mask = image[..., 3] > 0
    framed, framed_mask = frame_subject(image, mask, 100, 0.85, 128)
    cols = np.nonzero(framed_mask.any(axis=0))[0]
    rows = np.nonzero(framed_mask.any(axis=1))[0]
    assert cols.max() - cols.min() + 1 == pytest.approx(85, abs=2)
    assert (rows.min() + rows.max()) / 2 == pytest.approx(49.5, abs=1.5)
    near = ndimage.binary_dilation(framed_mask, iterations=2)  # resampled edge blends
    assert (framed[~near] == 128).all()


def test_folder_check_names_the_missing_part(tiny_pipeline_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pipe"
    shutil.copytree(tiny_pipeline_dir, copy)
    for weights in (copy / "unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelUnavailable, match="'unet' has no weights") as info:
        check_pipeline_folder(copy)
    assert str(copy / "unet") in str(info.value)
    shutil.rmtree(copy / "scheduler")
    with pytest.raises(ModelUnavailable, match="'scheduler'"):
        check_pipeline_folder(copy)
    with pytest.raises(ModelUnavailable, match=r"model_index\.json"):
        check_pipeline_folder(tmp_path)


def test_folder_check_finds_truncated_weights(tiny_pipeline_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pipe"
    shutil.copytree(tiny_pipeline_dir, copy)
    weights = next((copy / "vae").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelUnavailable, match="truncated"):
        check_pipeline_folder(copy)


def test_params_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCULPT_DIFFUSION_STRENGTH", "0.3")
    monkeypatch.setenv("SCULPT_DIFFUSION_STEPS", "4")
    monkeypatch.setenv("SCULPT_DIFFUSION_MODEL_DIR", "/ignored/here")
    from sculptsvc.settings import Settings

    params = DiffusionParams.from_settings(Settings())
    assert (params.strength, params.steps) == (0.3, 4)
    assert "silicone" in params.prompt  # unset prompt: the built-in one
    monkeypatch.setenv("SCULPT_DIFFUSION_PROMPT", "matte clay")
    assert DiffusionParams.from_settings(Settings()).prompt == "matte clay"
