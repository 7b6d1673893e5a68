"""Every corpus mesh, both modes: a validator-clean, watertight ~20k-triangle GLB.

The raw scan (bunny: holes in the base), suzanne (eyes as separate open shells, debris) and
the teapot (open lid, spout and handle as separate parts) are all repaired: none of the
corpus meshes is expected to be rejected.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import pytest

from sculptsvc.gltf_validator import validate_glb, validator_available
from sculptsvc.mesh import MeshParams, ProcessedMesh, export_glb, load_mesh, process_mesh
from tests.conftest import corpus_dir

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

MESHES = ["cow", "fandisk", "homer", "spot", "stanford-bunny", "suzanne", "teapot"]
# Inputs nothing can repair would be listed here with the error code the test expects.
EXPECTED_REJECTIONS: dict[str, str] = {}
PARAMS = MeshParams()
# The cow's own surface passes through itself, so the stage rebuilds it from a voxel field:
# no self-intersections, at a somewhat larger (bounded) deviation. (Suzanne's eye/head
# creases touch only through float32 rounding under the mold's check: repaired locally.)
VOXEL_REBUILT = {"cow"}


@cache
def processed(name: str) -> ProcessedMesh:
    return process_mesh(load_mesh(corpus_dir() / "meshes" / f"{name}.obj"), PARAMS)


@pytest.fixture(autouse=True)
def _needs(corpus: Path) -> None:
    if not validator_available():
        pytest.skip("glTF validator not installed (scripts/bootstrap runs npm install in tools/)")


@pytest.mark.parametrize("name", MESHES)
def test_corpus_mesh_is_repaired_to_a_clean_solid(name: str) -> None:
    if name in EXPECTED_REJECTIONS:
        pytest.skip("expected rejection is tested below")
    report = processed(name).report
    assert abs(report.triangles - 20_000) <= 400
    assert report.watertight and report.winding_consistent and report.outward
    assert report.shells == 1
    assert report.volume > 0
    assert report.self_intersecting_faces == 0
    # Smoothing and decimation stay close to the input; removed inner parts count one way.
    if name in VOXEL_REBUILT:
        assert report.repair_method == "remesh"
        assert report.hausdorff_out_to_in_rel < 0.05
        assert report.mean_deviation_rel < 0.005
    else:
        assert report.hausdorff_out_to_in_rel < 0.02
        assert report.mean_deviation_rel < 0.002


def test_hard_cases_needed_real_repair() -> None:
    bunny = processed("stanford-bunny").report
    assert bunny.input_boundary_edges > 0 and bunny.repair_method in ("direct", "remesh")
    teapot = processed("teapot").report
    assert teapot.input_shells == 4 and teapot.genus == 1  # the handle makes a loop
    suzanne = processed("suzanne").report
    assert suzanne.input_shells >= 3 and any(
        "debris" in a or "membrane" in a for a in suzanne.repair_actions
    )


@pytest.mark.parametrize("mode", ["multicolor", "solid"])
@pytest.mark.parametrize("name", MESHES)
def test_corpus_glb_passes_the_khronos_validator(name: str, mode: str) -> None:
    result = processed(name)
    glb = export_glb(result, mode=mode, color_hex="#C04A3B")
    report = validate_glb(glb)
    assert report.num_errors == 0 and report.num_warnings == 0, report.messages
    assert report.num_infos == 0 and report.num_hints == 0, report.messages
    assert report.raw["info"]["totalTriangleCount"] == result.report.triangles
    # Replays: the same result exports the same bytes.
    again = export_glb(result, mode=mode, color_hex="#C04A3B")
    assert hashlib.sha256(glb).digest() == hashlib.sha256(again).digest()
