"""Parting fallback: when the best-ranked parting fails a gate the mold tries the next
directions and levels, keeps the first that passes every gate, and says what it tried."""

from __future__ import annotations

import json

import manifold3d as m3
import numpy as np
import pytest

from mold import MoldGateFailed, MoldParams, MoldSpec, make_mold

SPEC = MoldSpec(size_mm=60, wall_mm=4)


def mushroom(
    cap_mm: float = 20.0, hollow_mm: float = 12.0, stem_mm: float = 3.0, foot_mm: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """A hollow hemispherical cap on a stem (revolved profile, one shell).

    The widest cross-section lies just above the rim, where the undercut is also lowest, so
    the ranking puts the plane there, pulling along the stem; but there the mold material
    inside the cap is walled in by the cap and the plane: a loose island in half A.
    """
    n = 24
    inner_end = np.arccos(stem_mm / hollow_mm)
    inner = [(hollow_mm * np.cos(t), hollow_mm * np.sin(t)) for t in np.linspace(0, inner_end, n)]
    outer = [(cap_mm * np.cos(t), cap_mm * np.sin(t)) for t in np.linspace(0, np.pi / 2, n)]
    profile = [(0.0, -foot_mm), (stem_mm, -foot_mm), *inner[::-1], *outer[:-1], (0.0, cap_mm)]
    mesh = m3.CrossSection([profile]).revolve(64).to_mesh64()
    return np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts, dtype=np.int64)


def test_island_in_the_first_parting_falls_back_to_one_that_passes() -> None:
    v, f = mushroom()
    result = make_mold(v, f, SPEC)
    parting = result.report.parting
    first, last = parting.tried[0], parting.tried[-1]
    assert len(parting.tried) >= 2
    assert not first.passed and first.refused.startswith("mold_gate_failed[single_shell]")
    assert "shells a=2" in first.refused or "b=2" in first.refused
    assert last.passed and last.refused == ""
    assert all(not a.passed for a in parting.tried[:-1])
    assert parting.chosen == last.name and parting.plane_offset_mm == last.plane_offset_mm
    assert result.report.gate.passed
    assert all(c.passed for c in result.report.gate.checks)
    tried = json.loads(result.report_json)["parting"]["tried"]
    assert [t["passed"] for t in tried] == [a.passed for a in parting.tried]


def test_when_no_parting_passes_the_error_names_the_best_failing_one() -> None:
    v, f = mushroom()
    with pytest.raises(MoldGateFailed) as info:
        make_mold(v, f, SPEC, MoldParams(parting_fallback_candidates=1))
    err = info.value
    assert err.check == "single_shell"
    assert "best-ranked, z" in err.message
    assert [t["name"] for t in err.detail["partings_tried"]] == ["z"]
    assert err.detail["partings_tried"][0]["refused"].startswith("mold_gate_failed[single_shell]")
