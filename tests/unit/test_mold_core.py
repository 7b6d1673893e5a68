"""make_mold on generated parts: geometry, placement, report and determinism properties."""

from __future__ import annotations

import hashlib
import json
from functools import cache

import manifold3d as m3
import numpy as np
import pytest

from mold import MoldReport, MoldResult, MoldSpec, make_mold, shapes
from mold.export import parse_stl, read_3mf_strict, stl_edge_report


@cache
def mold_of(shape: str, **spec: object) -> MoldResult:
    vertices, faces = getattr(shapes, shape)()
    return make_mold(vertices, faces, MoldSpec(**spec))


def solid_of(stl: bytes) -> m3.Manifold:
    tris = parse_stl(stl).reshape(-1, 3).astype(np.float32)
    faces = np.arange(len(tris), dtype=np.uint32).reshape(-1, 3)
    mesh = m3.Mesh(vert_properties=tris, tri_verts=faces)
    mesh.merge()
    return m3.Manifold(mesh)


@pytest.mark.parametrize("shape", ["sphere", "torus", "c_channel", "mushroom"])
def test_every_gate_passes_and_halves_are_closed_solids(shape: str) -> None:
    result = mold_of(shape)
    report = result.report
    assert report.gate.passed
    assert [c.name for c in report.gate.checks] == [
        "status", "single_shell", "stl_edges", "no_overlap", "cavity_volume", "min_wall",
        "three_mf",
    ]  # fmt: skip
    for stl in (result.stl_a, result.stl_b):
        edges = stl_edge_report(stl)
        assert edges.closed_two_manifold and edges.shells == 1
        assert len(stl) == 84 + 50 * edges.triangles
        solid = solid_of(stl)
        assert solid.status() == m3.Error.NoError and len(solid.decompose()) == 1


@pytest.mark.parametrize("shape", ["sphere", "torus", "mushroom"])
def test_cavity_holds_the_part_volume(shape: str) -> None:
    report = mold_of(shape).report
    assert report.cavity_volume_ml == pytest.approx(report.part.volume_ml, rel=0.005)
    assert report.pour_volume_ml > report.cavity_volume_ml  # sprue and vents hold some too
    assert report.mold_material_ml > report.cavity_volume_ml


def test_part_is_scaled_to_the_size_and_walled_by_the_spec() -> None:
    report = mold_of("sphere", size_mm=60.0, wall_mm=5.0).report
    lo, hi = np.array(report.part.bbox_min), np.array(report.part.bbox_max)
    assert float((hi - lo).max()) == pytest.approx(60.0, abs=1e-3)
    block_lo = np.array(report.block_min)
    assert block_lo[2] == pytest.approx(lo[2] - 5.0, abs=1e-3)
    assert np.all(block_lo[:2] <= lo[:2] - 5.0 + 1e-6)
    wall = next(c for c in report.gate.checks if c.name == "min_wall")
    assert wall.measured == pytest.approx(5.0, abs=1e-3)


def test_sphere_cast_from_the_top_without_undercut_or_vents() -> None:
    report = mold_of("sphere").report
    assert report.parting.undercut_fraction_a == 0.0
    assert report.parting.undercut_fraction_b == 0.0
    assert abs(report.parting.plane_offset_mm) < 0.01  # the equator
    assert report.sprue.cavity_point[:2] == pytest.approx((0.0, 0.0), abs=1e-6)
    assert report.sprue.top[2] == pytest.approx(report.block_max[2])
    assert report.sprue.diameter_top_mm > report.sprue.diameter_bottom_mm  # tapered
    assert report.vents == ()


def test_torus_is_pulled_along_its_axis() -> None:
    report = mold_of("torus").report
    assert report.parting.chosen == "z"
    assert report.parting.undercut_fraction_a + report.parting.undercut_fraction_b < 1e-3


def test_overhang_auto_parting_avoids_the_undercut_a_fixed_axis_reports_it() -> None:
    auto = mold_of("c_channel").report.parting
    assert auto.chosen in {"x", "y"}
    assert auto.undercut_fraction_a + auto.undercut_fraction_b < 1e-3
    fixed = mold_of("c_channel", parting="z").report.parting
    assert fixed.chosen == "z"
    assert fixed.undercut_fraction_a + fixed.undercut_fraction_b > 0.1
    # the slot's ceiling and floor, 14 x 30 (before scaling by 2) and 30 x 20 in the part
    assert fixed.undercut_area_a_mm2 + fixed.undercut_area_b_mm2 > 1000.0


def test_mushroom_parts_at_the_cap_underside() -> None:
    report = mold_of("mushroom").report
    assert report.parting.chosen == "z"
    assert report.parting.undercut_fraction_a + report.parting.undercut_fraction_b < 1e-3
    # at the cap's wide underside (z = 29 of 0..39 -> 19 mm above the centre after scaling
    # by 2), within one of the 33 sampled levels (78 mm * 0.9 / 32 apart)
    assert 19.0 <= report.parting.plane_offset_mm <= 19.0 + 78.0 * 0.9 / 32
    assert report.parting.cross_section_mm2 > 0.95 * np.pi * 40.0**2


def test_fixed_parting_offset_is_honoured() -> None:
    report = mold_of("sphere", parting="y", parting_offset_mm=10.0).report
    assert report.parting.chosen == "y"
    assert report.parting.plane_offset_mm == pytest.approx(10.0, abs=1e-3)
    assert report.parting.pull_direction == (0.0, 1.0, 0.0)


def test_halves_lie_on_the_bed_in_print_orientation() -> None:
    result = mold_of("sphere")
    a, b = (parse_stl(s).reshape(-1, 3) for s in (result.stl_a, result.stl_b))
    assert a[:, 2].min() == 0.0 and b[:, 2].min() == 0.0
    half_a, half_b = result.report.halves
    assert half_a.print_orientation == "parting_down"
    # A lies on its parting face: block minus the cavity opening and the key sockets
    report = result.report
    sockets = sum(np.pi * (k.diameter_mm / 2 + k.clearance_mm) ** 2 for k in report.keys)
    opening = 88.0 * 88.0 - report.parting.cross_section_mm2 - sockets
    assert solid_of(result.stl_a).slice(0.0).area() == pytest.approx(opening, rel=0.02)
    # B carries the male keys: they stand above its parting face
    key = report.keys[0]
    parting_z_b = -report.block_min[2]
    assert b[:, 2].max() == pytest.approx(parting_z_b + key.height_mm, abs=1e-3)
    assert half_b.bbox_max[2] > parting_z_b


def test_parting_up_turns_half_a_over() -> None:
    result = mold_of("sphere", print_orientation="parting_up")
    a = parse_stl(result.stl_a).reshape(-1, 3)
    height = result.report.block_max[2]
    assert a[:, 2].min() == 0.0 and a[:, 2].max() == pytest.approx(height, abs=1e-3)
    # now the parting face (with the cavity opening) is on top, the flat back on the bed
    assert solid_of(result.stl_a).slice(1e-3).area() == pytest.approx(88.0 * 88.0, rel=0.01)


def test_keys_are_male_on_b_sunk_clear_of_the_cavity_and_polarised() -> None:
    spec = MoldSpec()
    result = mold_of("sphere")
    report = result.report
    assert len(report.keys) == spec.key_count and report.keys_polarised
    centre = np.zeros(2)
    pts = np.array([k.position[:2] for k in report.keys])
    # no half turn maps the layout onto itself: the halves close one way only
    turned = 2 * centre - pts
    assert not all(np.linalg.norm(pts - t, axis=1).min() < 1.0 for t in turned)
    for k in report.keys:
        assert k.sink_mm > 0 and k.male_half == "b"
        # sphere of radius 40 centred on the axis: key edge at least a wall away from it
        assert np.linalg.norm(k.position[:2]) - 40.0 - k.diameter_mm / 2 >= spec.wall_mm
    # B = lower block - lower hemisphere + the male keys standing above the parting face
    k = report.keys[0]
    r0, rt, h = k.diameter_mm / 2, k.tip_diameter_mm / 2, k.height_mm
    key_above = np.pi * h / 3 * (r0 * r0 + r0 * rt + rt * rt)
    lower_block = 88.0 * 88.0 * -report.block_min[2]
    expected_b = lower_block - report.cavity_volume_ml * 1000.0 / 2 + len(report.keys) * key_above
    vb = solid_of(result.stl_b).volume()
    assert vb == pytest.approx(expected_b, abs=20.0)  # one key is ~55 mm^3
    assert report.halves[1].volume_ml == pytest.approx(vb / 1000.0, rel=1e-4)


def test_vents_rise_from_high_points_to_the_top() -> None:
    report = mold_of("torus").report
    assert 1 <= len(report.vents) <= MoldSpec().vent_count
    for vent in report.vents:
        assert vent.top[2] >= report.sprue.top[2]  # never lower than the sprue top
        assert vent.cavity_point[2] == pytest.approx(report.sprue.cavity_point[2], abs=0.01)
        gap = np.linalg.norm(np.array(vent.cavity_point[:2]) - report.sprue.cavity_point[:2])
        assert gap >= 8.0


def test_three_mf_holds_both_halves_in_millimetres() -> None:
    result = mold_of("torus")
    rep = read_3mf_strict(result.three_mf)
    assert rep.unit == "MilliMeter" and rep.build_items == 2 and rep.warnings == 0
    assert [o.name for o in rep.objects] == ["mold_a", "mold_b"]
    assert [o.triangles for o in rep.objects] == [h.triangles for h in result.report.halves]
    assert all(o.manifold_and_oriented for o in rep.objects)


def test_report_json_round_trips_and_names_the_artifacts() -> None:
    result = mold_of("torus")
    files = result.files()
    assert list(files) == ["mold_a.stl", "mold_b.stl", "mold.3mf", "mold.json"]
    data = json.loads(files["mold.json"])
    assert data["schema_version"] == 1
    again = MoldReport.model_validate_json(files["mold.json"])
    assert again == result.report
    assert data["halves"][0]["sha256"] == hashlib.sha256(result.stl_a).hexdigest()
    assert data["three_mf_sha256"] == hashlib.sha256(result.three_mf).hexdigest()
    assert "NaN" not in files["mold.json"].decode()


def test_same_input_gives_identical_bytes() -> None:
    vertices, faces = shapes.torus()
    first = make_mold(vertices, faces, MoldSpec()).files()
    second = make_mold(vertices.copy(), faces.copy(), MoldSpec()).files()
    assert first == second


def test_input_units_do_not_matter() -> None:
    vertices, faces = shapes.mushroom()
    metres = make_mold(vertices / 1000.0, faces).report
    millimetres = make_mold(vertices, faces).report
    assert metres.cavity_volume_ml == pytest.approx(millimetres.cavity_volume_ml, rel=1e-6)
    assert metres.part.scale_mm_per_unit == pytest.approx(
        1000.0 * millimetres.part.scale_mm_per_unit, rel=1e-9
    )


@pytest.mark.parametrize("offset_mm", [0.001, -0.001])
def test_a_part_in_world_coordinates_molds_like_one_at_the_origin(offset_mm: float) -> None:
    """A 5 cm scan kept in UTM metres: manifold3d's tolerance follows the largest coordinate,
    so a solid built there cut slivers at a plane 1 um from the equator's vertices."""
    vertices, faces = shapes.sphere()
    local = vertices * 0.025
    far = local + np.array([512345.0, 6781234.0, 120.0])
    spec = MoldSpec(parting="z", parting_offset_mm=offset_mm)
    there = make_mold(far, faces, spec).report
    here = make_mold(local, faces, spec).report
    assert there.gate.passed
    assert there.cavity_volume_ml == pytest.approx(here.cavity_volume_ml, rel=1e-9)
    assert there.part.volume_ml == pytest.approx(here.part.volume_ml, rel=1e-9)


def test_overlapping_shells_are_united_before_molding() -> None:
    v, f = shapes.sphere(1.0, 48)
    # two shells in one mesh, overlapping: a closed surface whose volume counts twice
    vertices = np.concatenate([v, v + np.array([1.0, 0.0, 0.0])])
    faces = np.concatenate([f, f + len(v)])
    report = make_mold(vertices, faces).report
    assert report.part.bodies_merged == 2
    a = m3.Manifold.sphere(1.0, 48)
    union = (a + a.translate((1.0, 0.0, 0.0))).volume()
    scale = report.part.scale_mm_per_unit
    assert report.cavity_volume_ml * 1000.0 == pytest.approx(union * scale**3, rel=0.005)


def test_a_part_above_the_report_cap_has_its_undercut_estimated_from_a_sample() -> None:
    """Above ``parting_report_faces`` the chosen parting's undercut comes from an
    area-weighted sample (a million-face scan: 6.5 s and 2 GB less); the estimate stays
    close to the exact figure, and the report says how many faces were cast."""
    import trimesh

    from mold import MoldParams

    vertices, faces = shapes.c_channel()
    for _ in range(4):  # 28 -> 7168 faces, the same solid
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    exact = make_mold(vertices, faces, MoldSpec(parting="z")).report.parting
    assert exact.undercut_faces_cast == len(faces)
    sampled = make_mold(
        vertices, faces, MoldSpec(parting="z"), MoldParams(parting_report_faces=1000)
    ).report.parting
    assert sampled.undercut_faces_cast == 1000
    for side in ("a", "b"):
        want = getattr(exact, f"undercut_fraction_{side}")
        got = getattr(sampled, f"undercut_fraction_{side}")
        assert abs(got - want) < 0.05 + 0.15 * want
