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
    for name in ("diffusion/model_index.json", "triposr/config.yaml", "triposr/model.ckpt"):
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
