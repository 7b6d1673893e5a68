"""TripoSG reconstructor: release layout, names and shapes, seeded flow, grid, colours."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
trimesh = pytest.importorskip("trimesh")

from sculptsvc.ai.tiny import TinyTripoSGSpec, make_tiny_triposg  # noqa: E402
from sculptsvc.ai.triposg.extract import BOUND, query_sdf, sdf_grid  # noqa: E402
from sculptsvc.ai.triposg.flow import sigmas  # noqa: E402
from sculptsvc.ai.triposg.model import PARTS  # noqa: E402
from sculptsvc.ai.triposg.reconstructor import (  # noqa: E402
    TripoSGParams,
    TripoSGReconstructor,
)
from sculptsvc.ai.triposg.weights import (  # noqa: E402
    MANIFEST_PATH,
    build_model,
    check_folder,
    official_manifest,
    part_manifest,
    read_manifest,
    save_folder,
)
from sculptsvc.errors import ModelUnavailable  # noqa: E402
from tests.unit.test_ai_triposr import subject_image  # noqa: E402

pytestmark = pytest.mark.ai

FAST = TripoSGParams(steps=3, num_tokens=64, resolution=32, coarse=8, chunk_points=4096)
BLOB_VOLUME = 4.0 / 3.0 * np.pi * TinyTripoSGSpec().blob_radius ** 3


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("triposg")
    save_folder(make_tiny_triposg(), folder)
    return folder


@pytest.fixture(scope="module")
def reconstructor(tiny_folder: Path) -> TripoSGReconstructor:
    return TripoSGReconstructor.from_folder(tiny_folder, "cpu", FAST)


# --- the full-size model ------------------------------------------------------------------


def test_full_size_model_on_meta_matches_committed_manifest() -> None:
    committed = read_manifest(MANIFEST_PATH)
    derived = official_manifest()  # built on the meta device: no memory, no weights
    assert committed == derived
    for part in PARTS:  # names, order and shapes
        assert list(derived["parts"][part].items()) == list(committed["parts"][part].items())
    counts = committed["num_parameters"]
    assert counts["transformer"] == 1_439_556_160  # the "1.5B" flow transformer
    assert counts["image_encoder_dinov2"] == 304_368_640  # DINOv2-L/14


def test_manifest_is_built_without_allocating() -> None:
    tiny = make_tiny_triposg().cfg
    model = build_model(tiny, "meta")
    assert all(p.is_meta for p in model.parameters())
    assert set(part_manifest(model, "vae")) == set(make_tiny_triposg().vae.state_dict())


@pytest.mark.parametrize(
    ("part", "key", "shape"),
    [
        ("transformer", "blocks.0.attn1.to_q.weight", [2048, 2048]),
        ("transformer", "blocks.0.attn1.norm_q.weight", [128]),
        ("transformer", "blocks.3.attn2.to_k.weight", [2048, 1024]),
        ("transformer", "blocks.20.skip_linear.weight", [2048, 4096]),
        ("transformer", "blocks.0.ff.net.0.proj.weight", [8192, 2048]),
        ("transformer", "time_proj.linear_1.weight", [8192, 2048]),
        ("vae", "decoder.blocks.16.attn2.norm_cross.weight", [1024]),
        ("vae", "decoder.proj_query.weight", [1024, 51]),
        ("vae", "encoder.proj_in.weight", [512, 54]),
        ("vae", "post_quant.weight", [1024, 64]),
        ("image_encoder_dinov2", "embeddings.position_embeddings", [1, 1370, 1024]),
        ("image_encoder_dinov2", "encoder.layer.23.attention.attention.query.weight", [1024, 1024]),
        ("image_encoder_dinov2", "encoder.layer.0.layer_scale1.lambda1", [1024]),
    ],
)
def test_manifest_uses_the_release_names(part: str, key: str, shape: list[int]) -> None:
    parts = read_manifest()["parts"]
    assert parts[part][key] == shape
    assert "blocks.10.skip_linear.weight" not in parts["transformer"]  # skips after the middle
    assert "blocks.11.skip_linear.weight" in parts["transformer"]
    assert not any("to_q.bias" in k for k in parts["transformer"])  # qkv_bias False


# --- folder checks ----------------------------------------------------------------------


def test_check_folder_accepts_the_release_layout(tiny_folder: Path) -> None:
    config = check_folder(tiny_folder)
    assert config.transformer.num_layers == TinyTripoSGSpec().layers
    for name in (
        "model_index.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "image_encoder_dinov2/model.safetensors",
        "feature_extractor_dinov2/preprocessor_config.json",
        "scheduler/scheduler_config.json",
    ):
        assert (tiny_folder / name).is_file(), name


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_check_folder_refuses_foreign_classes(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["vae"] = ["evil.module", "Anything"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelUnavailable, match="part 'vae'"):
        check_folder(folder)


def test_check_folder_names_missing_part_weights(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match=r"vae weights missing"):
        check_folder(folder)


def test_check_folder_names_mismatching_tensors(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    config_path = folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["num_layers"] += 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelUnavailable, match=r"missing: blocks\.3\.") as info:
        check_folder(folder)
    assert "transformer" in str(info.value)


def test_check_folder_finds_truncated_weights(tiny_folder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_folder, tmp_path)
    path = folder / "image_encoder_dinov2" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(ModelUnavailable, match="truncated"):
        check_folder(folder)


def test_bin_weights_load_with_weights_only(tiny_folder: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = _copy(tiny_folder, tmp_path)
    path = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(path)), folder / "vae" / "diffusion_pytorch_model.bin")
    path.unlink()
    a = TripoSGReconstructor.from_folder(tiny_folder, "cpu", FAST).model.vae.state_dict()
    b = TripoSGReconstructor.from_folder(folder, "cpu", FAST).model.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- sampling and extraction ---------------------------------------------------------------


def test_flow_levels_run_from_one_to_zero_with_shift() -> None:
    from sculptsvc.ai.triposg.config import SchedulerConfig

    plain = sigmas(SchedulerConfig(), 4)
    assert torch.allclose(plain, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    shifted = sigmas(SchedulerConfig(shift=3.0), 4)
    assert shifted[1] == pytest.approx(3 * 0.75 / (1 + 2 * 0.75))
    assert shifted[0] == 1.0 and shifted[-1] == 0.0


def test_seed_fixes_the_sampled_latents(reconstructor: TripoSGReconstructor) -> None:
    image = subject_image()
    a = reconstructor.latents([image], seed=11)
    b = reconstructor.latents([image], seed=11)
    c = reconstructor.latents([image], seed=12)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1


def test_coarse_to_fine_grid_equals_the_dense_grid_near_the_surface(
    reconstructor: TripoSGReconstructor,
) -> None:
    vae = reconstructor.model.vae
    latents = reconstructor.latents([subject_image()], seed=1)
    fine, stats = sdf_grid(vae, latents, resolution=32, coarse=8, chunk_points=4096)
    axis = torch.linspace(-BOUND, BOUND, 33)
    nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    dense = query_sdf(vae, vae.keys_values(latents), nodes, 4096).reshape(33, 33, 33).numpy()
    assert stats.levels == (8, 16, 32) and stats.total < dense.size
    assert ((fine > 0) == (dense > 0)).all()  # same inside/outside everywhere
    exact = np.isclose(fine, dense, atol=1e-5)
    near = np.abs(dense) < 0.1  # the surface band marching cubes interpolates in
    assert exact[near].all()


def test_tiny_model_gives_a_closed_blob_coloured_from_the_picture(
    reconstructor: TripoSGReconstructor,
) -> None:
    yy, xx = np.mgrid[:96, :128]
    mask = ((yy - 48) / 40) ** 2 + ((xx - 64) / 40) ** 2 < 1
    rgba = np.zeros((96, 128, 4), dtype=np.uint8)
    rgba[..., 0] = np.where(xx < 64, 230, 20)  # red on the left of the picture, blue right
    rgba[..., 2] = np.where(xx < 64, 20, 230)
    rgba[..., 3] = mask * 255
    from sculptsvc.stylize.base import StylizedImage

    out = reconstructor.reconstruct(StylizedImage(rgba=rgba, mask=mask), seed=5)
    mesh = trimesh.Trimesh(out.vertices, out.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.volume == pytest.approx(BLOB_VOLUME, rel=0.1)
    colors = out.vertex_colors
    assert colors is not None and out.color_source is not None
    front = mesh.vertex_normals[:, 2] > 0.5
    left = front & (out.vertices[:, 0] < -0.2)
    right = front & (out.vertices[:, 0] > 0.2)
    assert colors[left, 0].mean() > 180 and colors[left, 2].mean() < 60  # image-left is -x
    assert colors[right, 2].mean() > 180 and colors[right, 0].mean() < 60


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_attention_splits_fused_projections_per_head_first() -> None:
    """The release views [q | k | v] as (heads, 3 x head_dim) and splits each head's slice;
    re-stated in NumPy: head h's query is columns h 3d .. h 3d + d of the concatenation."""
    from sculptsvc.ai.triposg.model import Attention

    torch.manual_seed(0)
    heads, dim, n = 2, 8, 5
    attn = Attention(dim, heads, cross_dim=None, qk_norm=False, norm_cross=False).eval()
    x = torch.randn(1, n, dim)
    with torch.no_grad():
        got = attn(x)[0].numpy()
    xn = x[0].numpy().astype(np.float64)
    fused = np.concatenate(
        [xn @ attn.to_q.weight.detach().numpy().T.astype(np.float64),
         xn @ attn.to_k.weight.detach().numpy().T.astype(np.float64),
         xn @ attn.to_v.weight.detach().numpy().T.astype(np.float64)],
        axis=1,
    )  # fmt: skip
    d = dim // heads
    outs = []
    for h in range(heads):
        part = fused[:, h * 3 * d : (h + 1) * 3 * d]
        q, k, v = part[:, :d], part[:, d : 2 * d], part[:, 2 * d :]
        outs.append(_softmax(q @ k.T / np.sqrt(d)) @ v)
    mixed = np.concatenate(outs, axis=1)
    w_out = attn.to_out[0].weight.detach().numpy().astype(np.float64)
    expected = mixed @ w_out.T + attn.to_out[0].bias.detach().numpy()
    assert np.abs(got - expected).max() < 1e-5
