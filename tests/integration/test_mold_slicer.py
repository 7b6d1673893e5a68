"""A real slicer (PrusaSlicer, Debian) as the second opinion on every mold half.

Slicers repair broken meshes silently, so the mold's own gate is the proof; here the slicer
must also agree: ``--info`` says ``manifold = yes`` and G-code export succeeds without
"empty layer" complaints (a half floating above the bed or in pieces would cause them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import manifold3d as m3
import pytest

from mold import MoldResult, MoldSpec, make_mold, shapes
from mold.export import stl_bytes
from mold.geometry import canonical_float32, from_manifold
from sculptsvc.commands.mold import load_part

PRUSA = shutil.which("prusa-slicer")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PRUSA is None, reason="prusa-slicer not installed (scripts/bootstrap)"),
]
CORPUS_MESHES = ["cow", "fandisk", "homer", "spot", "stanford-bunny", "suzanne", "teapot"]
SLICE_TIMEOUT_S = 180


def slicer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PRUSA), *args], capture_output=True, text=True, timeout=SLICE_TIMEOUT_S, check=False
    )


def empty_layer_warnings(stl: Path, gcode: Path) -> list[str]:
    """Slice ``stl``; the "empty layer" lines PrusaSlicer prints (it still exits 0)."""
    run = slicer("--export-gcode", "-o", str(gcode), str(stl))
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-2000:]
    return [line for line in output.splitlines() if "empty layer" in line.lower()]


def test_the_empty_layer_check_can_fail(tmp_path: Path) -> None:
    """Negative control: two blocks with a gap in z do make the slicer complain."""
    cube = m3.Manifold.cube((10.0, 10.0, 10.0))
    mesh = from_manifold(cube + cube.translate((0.0, 0.0, 20.0)))
    stl = tmp_path / "gap.stl"
    stl.write_bytes(stl_bytes(*canonical_float32(mesh), "gap"))
    assert empty_layer_warnings(stl, tmp_path / "gap.gcode")


def check_with_slicer(result: MoldResult, tmp: Path) -> None:
    for name, data in (("mold_a.stl", result.stl_a), ("mold_b.stl", result.stl_b)):
        stl = tmp / name
        stl.write_bytes(data)
        info = slicer("--info", str(stl))
        assert info.returncode == 0, info.stderr[-2000:]
        assert re.search(r"^manifold = yes$", info.stdout, re.MULTILINE), info.stdout
        assert re.search(r"^min_z = 0\.0+$", info.stdout, re.MULTILINE), info.stdout
        facets = re.search(r"^number_of_facets = (\d+)$", info.stdout, re.MULTILINE)
        assert facets and int(facets.group(1)) == int.from_bytes(data[80:84], "little")
        gcode = tmp / f"{name}.gcode"
        assert empty_layer_warnings(stl, gcode) == []
        assert gcode.stat().st_size > 10_000


@cache
def corpus_mold(corpus: Path, name: str) -> MoldResult:
    part = load_part(corpus / "meshes" / f"{name}.obj")
    return make_mold(part.vertices, part.faces, MoldSpec())


def test_slicer_accepts_a_generated_mold(tmp_path: Path) -> None:
    check_with_slicer(make_mold(*shapes.torus(), MoldSpec()), tmp_path)


@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_MESHES)
def test_slicer_accepts_every_corpus_mold(corpus: Path, name: str, tmp_path: Path) -> None:
    check_with_slicer(corpus_mold(corpus, name), tmp_path)
