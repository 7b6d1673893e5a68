"""TripoSR-compatible reconstructor: official names and shapes, loading, isosurface, tiny e2e."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
trimesh = pytest.importorskip("trimesh")

from sculptsvc.ai.tiny import TinyTripoSRSpec, make_tiny_triposr  # noqa: E402
from sculptsvc.ai.triposr.config import (  # noqa: E402
    OFFICIAL_CONFIG,
    dump_config,
    load_config,
    parse_config,
)
from sculptsvc.ai.triposr.isosurface import (  # noqa: E402
    density_grid,
    marching_cubes,
    query_points,
)
from sculptsvc.ai.triposr.model import parameter_manifest  # noqa: E402
from sculptsvc.ai.triposr.preprocess import conditioning_image  # noqa: E402
from sculptsvc.ai.triposr.reconstructor import TripoSRParams, TripoSRReconstructor  # noqa: E402
from sculptsvc.ai.triposr.weights import (  # noqa: E402
    MANIFEST_PATH,
    build_model,
    check_folder,
    official_manifest,
    read_manifest,
    save_folder,
)
from sculptsvc.errors import ModelOutputInvalid, ModelUnavailable, NoSubject  # noqa: E402
from sculptsvc.stylize.base import StylizedImage  # noqa: E402

pytestmark = pytest.mark.ai

SPHERE_VOLUME = 4.0 / 3.0 * np.pi * TinyTripoSRSpec().blob_radius ** 3


def subject_image(height: int = 96, width: int = 128, seed: int = 0) -> StylizedImage:
    """An ellipse of noisy colour on a transparent background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    mask = ((yy - height / 2) / (height / 2.6)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 < 1
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(mask, 255, 0)
    return StylizedImage(rgba=rgba, mask=mask)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("triposr")
    save_folder(make_tiny_triposr(), folder)
    return folder


# --- names and shapes of the full-size model -----------------------------------------------


def test_full_size_model_on_meta_matches_committed_manifest() -> None:
    model = build_model(parse_config(OFFICIAL_CONFIG), "meta")
    built = parameter_manifest(model)
    committed = read_manifest(MANIFEST_PATH)
    assert list(built.items()) == list(committed["parameters"].items())  # names, order, shapes
    assert committed == official_manifest()
    total = sum(int(np.prod(shape)) for shape in built.values())
    assert total == committed["num_parameters"] == 419_275_628  # 1.68 GB in fp32
    assert len(built) == committed["num_tensors"] == 549
    assert all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("image_tokenizer.model.embeddings.position_embeddings", [1, 197, 768]),
        ("image_tokenizer.model.encoder.layer.11.attention.attention.query.weight", [768, 768]),
        ("image_tokenizer.model.encoder.layer.0.attention.output.dense.bias", [768]),
        ("image_tokenizer.model.encoder.layer.5.intermediate.dense.weight", [3072, 768]),
        ("image_tokenizer.model.encoder.layer.5.output.dense.weight", [768, 3072]),
        ("image_tokenizer.model.encoder.layer.3.layernorm_before.weight", [768]),
        ("image_tokenizer.model.pooler.dense.weight", [768, 768]),
        ("tokenizer.embeddings", [3, 1024, 32, 32]),
        ("backbone.norm.weight", [1024]),
        ("backbone.transformer_blocks.15.attn2.to_k.weight", [1024, 768]),
        ("backbone.transformer_blocks.0.ff.net.0.proj.weight", [8192, 1024]),
        ("backbone.transformer_blocks.0.ff.net.2.weight", [1024, 4096]),
        ("backbone.transformer_blocks.7.attn1.to_out.0.bias", [1024]),
        ("post_processor.upsample.weight", [1024, 40, 2, 2]),
        ("decoder.layers.0.weight", [64, 120]),
        ("decoder.layers.18.weight", [4, 64]),
    ],
)
def test_manifest_uses_the_official_checkpoint_names(key: str, shape: list[int]) -> None:
    parameters = read_manifest()["parameters"]
    assert parameters[key] == shape
    assert not any(".q_proj." in k for k in parameters)  # transformers-5 names leaked
    assert not any(k.startswith("image_tokenizer.model.layers.") for k in parameters)
    assert not any("attn1.to_q.bias" in k for k in parameters)  # attention_bias is False


def test_state_dict_round_trips_with_official_names() -> None:
    model = make_tiny_triposr()
    state = model.state_dict()
    assert "image_tokenizer.model.encoder.layer.1.attention.attention.key.weight" in state
    other = make_tiny_triposr(TinyTripoSRSpec(seed=1))
    other.load_state_dict(state, strict=True)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key


# --- config ------------------------------------------------------------------------------------


def test_official_config_parses_and_resolves_references() -> None:
    config = parse_config(OFFICIAL_CONFIG)
    assert config.backbone.in_channels == 1024  # from ${tokenizer.num_channels}
    assert config.renderer.density_activation == "exp"
    assert parse_config(__import__("yaml").safe_load(dump_config(config))) == config


def test_config_refuses_other_classes() -> None:
    bad = {**OFFICIAL_CONFIG, "decoder_cls": "os.system"}
    with pytest.raises(ValueError, match="decoder_cls"):
        parse_config(bad)


def test_config_reports_inconsistent_shapes() -> None:
    bad = {**OFFICIAL_CONFIG, "decoder": {**OFFICIAL_CONFIG["decoder"], "in_channels": 100}}
    with pytest.raises(ValueError, match=r"decoder\.in_channels"):
        parse_config(bad)


# --- folder checks -------------------------------------------------------------------------


def test_check_folder_accepts_tiny_folder(tiny_folder: Path) -> None:
    config = check_folder(tiny_folder)
    assert config.tokenizer.plane_size == TinyTripoSRSpec().plane_size


def test_check_folder_names_missing_weights(tiny_folder: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_folder / "config.yaml", tmp_path / "config.yaml")
    with pytest.raises(ModelUnavailable, match=r"model\.safetensors, model\.ckpt") as info:
        check_folder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_check_folder_names_missing_config(tiny_folder: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_folder / "model.ckpt", tmp_path / "model.ckpt")
    with pytest.raises(ModelUnavailable, match=r"config\.yaml"):
        check_folder(tmp_path)


def test_check_folder_names_mismatching_keys(tiny_folder: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_folder / "model.ckpt", tmp_path / "model.ckpt")
    config = load_config(tiny_folder / "config.yaml")
    wider = config.model_copy(
        update={"decoder": config.decoder.model_copy(update={"n_neurons": 48})}
    )
    (tmp_path / "config.yaml").write_text(dump_config(wider))
    with pytest.raises(ModelUnavailable, match=r"shape: decoder\.layers\.0\.weight") as info:
        check_folder(tmp_path)
    assert info.value.detail["mismatched"] > 0


def test_check_folder_finds_extra_and_missing_tensors(tiny_folder: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_folder / "config.yaml", tmp_path / "config.yaml")
    state = torch.load(tiny_folder / "model.ckpt", weights_only=True)
    state["decoder.layers.99.weight"] = state.pop("decoder.layers.0.weight")
    torch.save(state, tmp_path / "model.ckpt")
    with pytest.raises(ModelUnavailable, match=r"missing: decoder\.layers\.0\.weight") as info:
        check_folder(tmp_path)
    assert "unexpected: decoder.layers.99.weight" in str(info.value)


def test_check_folder_finds_truncated_safetensors(tiny_folder: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_folder / "config.yaml", tmp_path / "config.yaml")
    data = (tiny_folder / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(ModelUnavailable, match="truncated"):
        check_folder(tmp_path)


def test_ckpt_and_safetensors_load_the_same_weights(tiny_folder: Path, tmp_path: Path) -> None:
    only_ckpt = tmp_path / "ckpt"
    only_ckpt.mkdir()
    for name in ("config.yaml", "model.ckpt"):
        shutil.copy(tiny_folder / name, only_ckpt / name)
    image = subject_image()
    a = TripoSRReconstructor.from_folder(only_ckpt, "cpu").scene_code(image)
    b = TripoSRReconstructor.from_folder(tiny_folder, "cpu").scene_code(image)
    assert torch.equal(a, b)


# --- isosurface ----------------------------------------------------------------------------


def test_factorised_density_grid_equals_pointwise_queries() -> None:
    model = make_tiny_triposr()
    renderer = model.cfg.renderer
    code = TripoSRReconstructor(model).scene_code(subject_image())
    resolution = 12
    grid = density_grid(model.decoder, code, renderer, resolution, chunk_points=300)
    axis = np.linspace(-renderer.radius, renderer.radius, resolution)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    density, _ = query_points(model.decoder, code, renderer, points, chunk_points=500)
    np.testing.assert_allclose(grid.reshape(-1), density, rtol=1e-4, atol=1e-3)


def test_marching_cubes_closes_a_surface_cut_by_the_box() -> None:
    density = np.full((8, 8, 8), 100.0, dtype=np.float32)  # everything inside
    verts, faces = marching_cubes(density, threshold=25.0, radius=1.0)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0
    assert mesh.volume == pytest.approx(8.0, rel=0.1)  # the [-1, 1]^3 box


def test_marching_cubes_rejects_empty_and_nan_grids() -> None:
    with pytest.raises(ModelOutputInvalid, match="empty"):
        marching_cubes(np.zeros((8, 8, 8), np.float32), 25.0, 1.0)
    nan = np.full((8, 8, 8), np.nan, np.float32)
    with pytest.raises(ModelOutputInvalid, match="NaN"):
        marching_cubes(nan, 25.0, 1.0)


def test_conditioning_image_centres_subject_at_the_ratio() -> None:
    image = subject_image(80, 40)
    cond = conditioning_image(image, size=100, foreground_ratio=0.85).numpy()
    assert cond.shape == (3, 100, 100)
    foreground = np.abs(cond - 0.5).max(axis=0) > 0.02
    rows, cols = np.nonzero(foreground)
    assert rows.max() - rows.min() + 1 == pytest.approx(85, abs=3)  # longer side
    assert (rows.min() + rows.max()) / 2 == pytest.approx(49.5, abs=2)
    assert (cols.min() + cols.max()) / 2 == pytest.approx(49.5, abs=2)
    with pytest.raises(NoSubject):
        conditioning_image(
            StylizedImage(rgba=image.rgba, mask=np.zeros_like(image.mask)), 100, 0.85
        )


# --- end to end on the tiny model ----------------------------------------------------------


def test_tiny_model_reconstructs_a_closed_coloured_blob(tiny_folder: Path) -> None:
    reconstructor = TripoSRReconstructor.from_folder(
        tiny_folder, "cpu", TripoSRParams(resolution=48)
    )
    out = reconstructor.reconstruct(subject_image(), seed=7)
    mesh = trimesh.Trimesh(out.vertices, out.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1
    # The picture nudges the blob by design (TinyTripoSRSpec.image_influence): within 10%.
    assert mesh.volume == pytest.approx(SPHERE_VOLUME, rel=0.1)
    assert out.vertex_colors is not None and out.vertex_colors.shape == (len(out.vertices), 4)
    assert out.vertex_colors[:, :3].std(axis=0).min() > 10  # a colour field, not one colour
    assert (out.vertex_colors[:, 3] == 255).all()
    # Image-right is +x: the colour ramp of the TripoSR y axis must now follow x.
    blue = out.vertex_colors[:, 2].astype(float)
    assert np.corrcoef(blue, out.vertices[:, 0])[0, 1] > 0.9

    again = reconstructor.reconstruct(subject_image(), seed=8)
    digest = [
        hashlib.sha256(m.vertices.tobytes() + m.faces.tobytes()).hexdigest() for m in (out, again)
    ]
    assert digest[0] == digest[1]


def test_tiny_model_output_feeds_the_mesh_stage(tiny_folder: Path) -> None:
    mesh_stage = pytest.importorskip("sculptsvc.mesh")
    reconstructor = TripoSRReconstructor.from_folder(
        tiny_folder, "cpu", TripoSRParams(resolution=48)
    )
    out = reconstructor.reconstruct(subject_image(seed=3), seed=0)
    processed = mesh_stage.process_mesh(out, mesh_stage.MeshParams(target_faces=2_000))
    assert processed.mesh.is_watertight
    assert processed.mesh.volume == pytest.approx(SPHERE_VOLUME, rel=0.08)
    assert abs(len(processed.mesh.faces) - 2_000) <= 200
    assert processed.color_source is not None


def test_manifest_file_is_formatted_one_tensor_per_line() -> None:
    text = MANIFEST_PATH.read_text()
    assert json.loads(text)["num_tensors"] == text.count('\n  "')
