"""Our ViT encoders: the position-embedding resize pinned to transformers 4.35's formula by an
independent NumPy re-statement, parity with the installed transformers where no resize
happens, and no model code path that depends on transformers' or diffusers' behaviour."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sculptsvc.ai.vit import (  # noqa: E402
    Dinov2Encoder,
    DinoViT,
    ViTSpec,
    resize_position_embeddings,
)
from tests.conftest import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.ai

CUBIC_A = -0.75
"""PyTorch's (and OpenCV's) bicubic convolution coefficient."""


# --- independent re-statement (NumPy only) ---------------------------------------------------


def _cubic_weights(t: float) -> np.ndarray:
    """Keys' cubic convolution weights of the taps at offsets -1, 0, 1, 2 for fraction t."""

    def near(x: float) -> float:  # |x| <= 1
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1

    def far(x: float) -> float:  # 1 < |x| < 2
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)])


def _resample_axis(values: np.ndarray, out_size: int, scale: float, axis: int) -> np.ndarray:
    """Bicubic along one axis, align_corners=False, source x = (i + 0.5) / scale - 0.5,
    taps clamped to the edge (what F.interpolate does when given a scale factor)."""
    n = values.shape[axis]
    moved = np.moveaxis(values, axis, 0)
    out = np.empty((out_size, *moved.shape[1:]), dtype=np.float64)
    for i in range(out_size):
        src = (i + 0.5) / scale - 0.5
        base = math.floor(src)
        weights = _cubic_weights(src - base)
        taps = [min(max(base + k, 0), n - 1) for k in (-1, 0, 1, 2)]
        out[i] = sum(w * moved[t] for w, t in zip(weights, taps, strict=True))
    return np.moveaxis(out, 0, axis)


def dino_435_resize(pos: np.ndarray, patch: int, height: int, width: int) -> np.ndarray:
    """transformers 4.35 ``ViTEmbeddings.interpolate_pos_encoding``, re-stated: grid
    h0 = height // patch + 0.1, scale factors h0 / sqrt(N), bicubic, class token kept."""
    n = pos.shape[1] - 1
    side = int(math.sqrt(n))
    h0, w0 = height // patch + 0.1, width // patch + 0.1
    grid = pos[0, 1:].reshape(side, side, -1).astype(np.float64)
    out_h, out_w = math.floor(side * (h0 / math.sqrt(n))), math.floor(side * (w0 / math.sqrt(n)))
    assert (out_h, out_w) == (int(h0), int(w0))
    grid = _resample_axis(grid, out_h, h0 / math.sqrt(n), axis=0)
    grid = _resample_axis(grid, out_w, w0 / math.sqrt(n), axis=1)
    return np.concatenate([pos[0, :1], grid.reshape(out_h * out_w, -1)])[None]


# --- the tests -------------------------------------------------------------------------------

TINY = ViTSpec(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    image_size=224, patch_size=16,
)  # fmt: skip
"""DINO's 224 px / 16 px grid (14 x 14) at a tiny width."""


def test_resize_at_32_patches_equals_the_numpy_restatement_of_435() -> None:
    torch.manual_seed(0)
    model = DinoViT(TINY)
    pos = model.embeddings.position_embeddings.detach()
    ours = resize_position_embeddings(pos, 32, 32, "dino_scale_factor")  # 512 / 16 = 32
    expected = dino_435_resize(pos.numpy(), 16, 512, 512)
    assert ours.shape == (1, 1 + 32 * 32, 16)
    assert np.abs(ours.numpy() - expected).max() < 1e-6
    # The newer rule (straight to 32 x 32) is measurably different: the test can tell them apart.
    newer = resize_position_embeddings(pos, 32, 32, "target_size")
    assert np.abs(newer.numpy() - expected).max() > 1e-3


def test_embeddings_of_a_512px_image_use_the_435_grid() -> None:
    torch.manual_seed(1)
    model = DinoViT(TINY).eval()
    images = torch.rand(1, 3, 512, 512)
    with torch.no_grad():
        tokens = model.embeddings(images)
        patches = model.embeddings.patch_embeddings(images)
    cls = model.embeddings.cls_token.detach()
    pos = dino_435_resize(model.embeddings.position_embeddings.detach().numpy(), 16, 512, 512)
    expected = np.concatenate([cls.numpy(), patches.numpy()], axis=1) + pos
    assert np.abs(tokens.numpy() - expected).max() < 1e-5


def _copy_into(library_model: torch.nn.Module, ours: torch.nn.Module) -> None:
    """Load our (4.x-named) weights into the installed transformers model, 4.x or 5.x names."""
    target = library_model.state_dict()
    renames = {
        ".attention.attention.query.": ".attention.q_proj.",
        ".attention.attention.key.": ".attention.k_proj.",
        ".attention.attention.value.": ".attention.v_proj.",
        ".attention.output.dense.": ".attention.o_proj.",
        ".intermediate.dense.": ".mlp.fc1.",
        ".output.dense.": ".mlp.fc2.",
    }
    state = {}
    for key, value in ours.state_dict().items():
        name = key
        if name not in target:
            for old, new in renames.items():
                name = name.replace(old, new)
            if name not in target:
                name = name.replace("encoder.layer.", "layers.")
        assert name in target, f"{key} has no counterpart in the installed transformers"
        state[name] = value
    library_model.load_state_dict(state, strict=True)


def test_dino_vit_equals_installed_transformers_where_no_resize_happens() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(2)
    ours = DinoViT(TINY).eval()
    config = transformers.ViTConfig(**TINY.model_dump(exclude={"mlp_ratio", "layerscale_value",
                                                              "use_swiglu_ffn"}))  # fmt: skip
    library = transformers.ViTModel(config, add_pooling_layer=True).eval()
    _copy_into(library, ours)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = library(pixel_values=images).last_hidden_state
        got = ours(images)
    assert (got - expected).abs().max() < 1e-5


def test_dinov2_equals_installed_transformers_where_no_resize_happens() -> None:
    transformers = pytest.importorskip("transformers")
    spec = ViTSpec(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=56,
        patch_size=14, layer_norm_eps=1e-6, layerscale_value=0.5,
    )  # fmt: skip
    torch.manual_seed(3)
    ours = Dinov2Encoder(spec).eval()
    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=56,
        patch_size=14, layer_norm_eps=1e-6, layerscale_value=0.5, mlp_ratio=4,
    )  # fmt: skip
    library = transformers.Dinov2Model(config).eval()
    with torch.no_grad():
        for module in ours.modules():  # non-trivial layer scales and norms
            if hasattr(module, "lambda1"):
                module.lambda1.uniform_(0.2, 1.5)
    _copy_into(library, ours)
    images = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        expected = library(pixel_values=images).last_hidden_state
        got = ours(images)
    assert (got - expected).abs().max() < 1e-5


MODEL_CODE = [
    REPO_ROOT / "sculptsvc" / "ai" / "vit.py",
    *sorted((REPO_ROOT / "sculptsvc" / "ai" / "triposr").glob("*.py")),
    *sorted((REPO_ROOT / "sculptsvc" / "ai" / "triposg").glob("*.py")),
]


@pytest.mark.parametrize("path", MODEL_CODE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reconstructor_code_imports_neither_transformers_nor_diffusers(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"transformers", "diffusers", "huggingface_hub", "timm"}


def test_running_both_reconstructors_loads_no_transformers_or_diffusers() -> None:
    """The whole TripoSR and TripoSG paths (build, save, check, load, reconstruct) in a fresh
    interpreter: neither library gets imported, so neither can change what they compute."""
    code = """
import sys, tempfile
from pathlib import Path
import numpy as np
from sculptsvc.ai.tiny import make_tiny_triposg, make_tiny_triposr
from sculptsvc.ai.triposg.reconstructor import TripoSGParams, TripoSGReconstructor
from sculptsvc.ai.triposg.weights import save_folder as save_sg
from sculptsvc.ai.triposr.reconstructor import TripoSRParams, TripoSRReconstructor
from sculptsvc.ai.triposr.weights import save_folder as save_sr
from sculptsvc.stylize.base import StylizedImage
yy, xx = np.mgrid[:64, :64]
mask = (yy - 32) ** 2 + (xx - 32) ** 2 < 400
rgba = np.zeros((64, 64, 4), np.uint8); rgba[..., 0] = 200; rgba[..., 3] = mask * 255
image = StylizedImage(rgba=rgba, mask=mask)
root = Path(tempfile.mkdtemp())
save_sr(make_tiny_triposr(), root / "sr"); save_sg(make_tiny_triposg(), root / "sg")
sr = TripoSRReconstructor.from_folder(root / "sr", "cpu", TripoSRParams(resolution=24))
sr.reconstruct(image, seed=0)
params = TripoSGParams(steps=2, num_tokens=32, resolution=16, coarse=8)
TripoSGReconstructor.from_folder(root / "sg", "cpu", params).reconstruct(image, seed=0)
loaded = sorted(m for m in ("transformers", "diffusers", "huggingface_hub") if m in sys.modules)
print("LOADED", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
