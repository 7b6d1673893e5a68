"""Every corpus mesh becomes a gated two-part mold (open/self-intersecting ones repaired first)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mold import MoldResult, MoldSpec, make_mold
from mold.export import parse_stl, read_3mf_strict, stl_edge_report
from sculptsvc.commands.mold import LoadedPart, load_part

MESHES = ["cow", "fandisk", "homer", "spot", "stanford-bunny", "suzanne", "teapot"]
pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@cache
def part_of(corpus: Path, name: str) -> LoadedPart:
    return load_part(corpus / "meshes" / f"{name}.obj")


@cache
def mold_of(corpus: Path, name: str) -> MoldResult:
    part = part_of(corpus, name)
    return make_mold(part.vertices, part.faces, MoldSpec())


@pytest.mark.parametrize("name", MESHES)
def test_corpus_mesh_passes_every_gate(corpus: Path, name: str) -> None:
    result = mold_of(corpus, name)
    report = result.report
    assert report.gate.passed and all(c.passed for c in report.gate.checks)
    assert len(report.gate.checks) == 7
    assert report.cavity_volume_ml == pytest.approx(report.part.volume_ml, rel=0.005)
    assert 0.0 <= report.parting.undercut_fraction_a <= 1.0
    assert 0.0 <= report.parting.undercut_fraction_b <= 1.0
    assert report.parting.chosen in {c.name for c in report.parting.candidates}
    # size is the longest side in the part's own frame (the mold frame may be turned)
    extent = np.ptp(part_of(corpus, name).vertices, axis=0).max() * report.part.scale_mm_per_unit
    assert float(extent) == pytest.approx(80.0, abs=1e-3)
    wall = next(c for c in report.gate.checks if c.name == "min_wall")
    assert wall.measured >= 4.0 - 1e-3
    for stl in (result.stl_a, result.stl_b):
        edges = stl_edge_report(stl)
        assert edges.closed_two_manifold and edges.shells == 1
        assert parse_stl(stl)[:, :, 2].min() == 0.0
    rep = read_3mf_strict(result.three_mf)
    assert rep.unit == "MilliMeter" and [o.triangles for o in rep.objects] == [
        h.triangles for h in report.halves
    ]


def test_repairs_were_needed_where_expected(corpus: Path) -> None:
    # open or self-intersecting inputs are repaired; clean ones pass untouched
    for name in ("fandisk", "homer", "spot"):
        assert part_of(corpus, name).repair == "none"
    for name in ("stanford-bunny", "suzanne", "teapot", "cow"):
        assert part_of(corpus, name).repair != "none"


def test_corpus_mold_is_byte_identical_on_a_rerun(corpus: Path) -> None:
    part = part_of(corpus, "homer")
    again = make_mold(part.vertices.copy(), part.faces.copy(), MoldSpec())
    first = mold_of(corpus, "homer")
    assert {k: hashlib.sha256(v).hexdigest() for k, v in again.files().items()} == {
        k: hashlib.sha256(v).hexdigest() for k, v in first.files().items()
    }


def test_figure_with_raised_arms_gets_vents(corpus: Path) -> None:
    report = mold_of(corpus, "homer").report
    assert report.vents, "homer's hands and head trap air"
    for vent in report.vents:
        assert vent.top[2] >= report.sprue.top[2]
