"""scripts/make-tiny-models as operators run it, then the whole AI path on its output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.ai, pytest.mark.slow]


def test_script_writes_folders_the_service_accepts_and_runs(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from sculptsvc.ai.backends import check_backends, load_reconstructor, load_stylizer
    from sculptsvc.settings import Settings

    out = tmp_path / "models"
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "make-tiny-models"), str(out)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    for name in (
        "diffusion/model_index.json",
        "triposr/config.yaml",
        "triposr/model.ckpt",
        "triposg/model_index.json",
        "triposg/transformer/diffusion_pytorch_model.safetensors",
    ):
        assert (out / name).is_file(), name
    settings = Settings(
        stylizer="diffusion",
        reconstructor="triposr",
        diffusion_model_dir=out / "diffusion",
        triposr_model_dir=out / "triposr",
        device="cpu",
    )
    assert len(check_backends(settings)) == 2

    yy, xx = np.mgrid[:120, :160]
    picture = np.zeros((120, 160, 4), dtype=np.uint8)
    picture[..., :3] = (180, 90, 40)
    picture[..., 3] = np.where(((yy - 60) / 45) ** 2 + ((xx - 80) / 55) ** 2 < 1, 255, 0)
    stylized = load_stylizer(settings).stylize(picture, seed=1)
    mesh = load_reconstructor(settings).reconstruct(stylized, seed=1)
    mesh_stage = pytest.importorskip("sculptsvc.mesh")
    processed = mesh_stage.process_mesh(mesh, mesh_stage.MeshParams(target_faces=3_000))
    assert processed.mesh.is_watertight
    assert abs(len(processed.mesh.faces) - 3_000) <= 300

    # The script's TripoSG folder passes the same start-up gate and reconstructs.
    sg_settings = Settings(
        reconstructor="triposg",
        triposg_model_dir=out / "triposg",
        triposg_steps=2,
        triposg_latent_tokens=64,
        triposg_grid_resolution=64,
        device="cpu",
    )
    assert check_backends(sg_settings)[1].backend == "triposg"
    sg_mesh = load_reconstructor(sg_settings).reconstruct(stylized, seed=1)
    assert len(sg_mesh.faces) > 1_000 and sg_mesh.color_source is not None


def test_tiny_triposg_drives_the_pipeline_into_the_mesh_stage_and_the_mold(
    tmp_path: Path,
) -> None:
    """The real TripoSG code path (release layout on disk, start-up check, seeded flow,
    coarse-to-fine SDF, marching cubes, projected colour) through the mesh stage and the mold."""
    import io

    from PIL import Image

    from sculptsvc.ai.backends import check_backends, load_reconstructor
    from sculptsvc.ai.tiny import TinyTripoSGSpec, make_tiny_triposg
    from sculptsvc.ai.triposg.weights import save_folder
    from sculptsvc.options import PipelineOptions
    from sculptsvc.pipeline import run_pipeline
    from sculptsvc.settings import Settings
    from sculptsvc.stylize.classic import ClassicStylizer

    folder = tmp_path / "triposg"
    save_folder(make_tiny_triposg(TinyTripoSGSpec(seed=3)), folder)
    settings = Settings(
        reconstructor="triposg",
        triposg_model_dir=folder,
        triposg_steps=4,
        triposg_latent_tokens=128,
        triposg_grid_resolution=64,
        triposg_chunk_points=16_384,
        device="cpu",
    )
    assert check_backends(settings)[1].backend == "triposg"
    reconstructor = load_reconstructor(settings)

    yy, xx = np.mgrid[:200, :160]
    picture = np.zeros((200, 160, 4), dtype=np.uint8)
    picture[..., :3] = (40, 150, 200)
    picture[..., 3] = np.where(((yy - 100) / 80) ** 2 + ((xx - 80) / 60) ** 2 < 1, 255, 0)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    options = PipelineOptions(size_mm=60.0, seed=9, target_faces=2_000, validate_glb=False)
    result = run_pipeline(buffer.getvalue(), options, ClassicStylizer(), reconstructor, settings)
    report = result.report
    assert report.reconstruct.backend == "triposg"
    assert report.mesh.watertight and report.mesh.shells == 1 and report.mesh.outward
    assert abs(report.mesh.triangles - 2_000) <= 0.05 * 2_000
    assert max(report.mesh.extents) == pytest.approx(60.0, rel=0.02)
    assert report.mold.gate_passed and report.mold.cavity_volume_ml > 1.0
    again = run_pipeline(buffer.getvalue(), options, ClassicStylizer(), reconstructor, settings)
    assert again.artifacts["mold_a.stl"] == result.artifacts["mold_a.stl"]  # seeded: replayable
