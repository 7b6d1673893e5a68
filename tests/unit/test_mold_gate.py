"""Negative tests: every bad input is rejected and every gate check catches its defect."""

from __future__ import annotations

import dataclasses
from functools import cache

import manifold3d as m3
import numpy as np
import pytest
from pydantic import ValidationError

from mold import (
    InvalidPart,
    InvalidSpec,
    KeysDoNotFit,
    MoldError,
    MoldGateFailed,
    MoldGenerationFailed,
    MoldParams,
    MoldSpec,
    PartDegenerate,
    PartDisconnected,
    PartNotManifold,
    PartSelfIntersecting,
    PartTooThin,
    PartTooThinForSprue,
    SprueTooLarge,
    make_mold,
    shapes,
)
from mold.core import MoldGeometry, build_geometry, export_halves, gate_input
from mold.export import stl_bytes, stl_edge_report
from mold.gate import GateInput, check_three_mf, run_gate
from mold.spec import SPRUE_MM_DEFAULT

SPEC = MoldSpec()
PARAMS = MoldParams()


@cache
def torus_geometry() -> MoldGeometry:
    v, f = shapes.torus(segments=48)
    return build_geometry(v, f, SPEC, PARAMS)


def gate(geom: MoldGeometry, spec: MoldSpec = SPEC) -> None:
    run_gate(gate_input(geom, export_halves(geom, spec), PARAMS), spec, PARAMS)


def failed_check(geom: MoldGeometry, spec: MoldSpec = SPEC) -> MoldGateFailed:
    with pytest.raises(MoldGateFailed) as info:
        gate(geom, spec)
    err = info.value
    assert err.code == "mold_gate_failed" and not err.rejects_input
    assert isinstance(err, MoldGenerationFailed)
    assert {c["name"] for c in err.detail["checks"]} >= {"status"}
    return err


def test_the_untouched_geometry_passes() -> None:
    gate(torus_geometry())


# --- the part ------------------------------------------------------------------------------


def test_open_part_is_rejected() -> None:
    v, f = shapes.sphere()
    with pytest.raises(PartNotManifold) as info:
        make_mold(v, f[1:])
    assert info.value.code == "part_not_manifold" and info.value.rejects_input
    assert info.value.detail["manifold_status"] == "NotManifold"


def test_flipped_face_is_rejected() -> None:
    v, f = shapes.sphere()
    f = f.copy()
    f[0] = f[0, ::-1]
    with pytest.raises(PartNotManifold):
        make_mold(v, f)


@pytest.mark.parametrize(
    ("vertices", "faces", "match"),
    [
        (np.full((4, 3), np.nan), np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]]), "NaN"),
        (np.eye(4, 3), np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 9]]), "out of range"),
        (np.eye(4, 3), np.array([[0, 1, 2]]), "faces must be"),
        (np.zeros((4, 2)), np.array([[0, 1, 2]] * 4), "vertices must be"),
        (np.eye(4, 3), np.array([[0.5, 1, 2]] * 4), "integer"),
    ],
)
def test_malformed_arrays_are_rejected(vertices: np.ndarray, faces: np.ndarray, match: str) -> None:
    with pytest.raises(PartDegenerate, match=match):
        make_mold(vertices, faces)


def test_separate_bodies_are_rejected() -> None:
    v, f = shapes.sphere(1.0, 32)
    vertices = np.concatenate([v, v + np.array([3.0, 0.0, 0.0])])
    faces = np.concatenate([f, f + len(v)])
    with pytest.raises(PartDisconnected) as info:
        make_mold(vertices, faces)
    assert len(info.value.detail["body_volumes"]) == 2


def test_tiny_debris_is_dropped_not_rejected() -> None:
    v, f = shapes.sphere(1.0, 32)
    speck = v * 0.05 + [3.0, 0.0, 0.0]  # 1/8000 of the volume
    report = make_mold(np.concatenate([v, speck]), np.concatenate([f, f + len(v)])).report
    assert report.part.bodies_dropped == 1


def test_every_mold_error_is_typed_for_the_service() -> None:
    for cls in (PartNotManifold, PartDegenerate, PartDisconnected, PartTooThin, InvalidSpec):
        assert issubclass(cls, MoldError) and cls.rejects_input
    for cls in (KeysDoNotFit, MoldGateFailed):
        assert issubclass(cls, MoldGenerationFailed) and not cls.rejects_input
    assert issubclass(PartNotManifold, InvalidPart)


# --- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"wall_mm": 0.5},
        {"size_mm": 5.0},
        {"key_count": 1},
        {"parting": "auto", "parting_offset_mm": 1.0},
        {"parting": "w"},
        {"vent_diameter_mm": 6.0, "sprue_diameter_mm": 6.0},
        {"unknown_field": 1},
    ],
)
def test_bad_spec_fails_validation(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MoldSpec(**fields)


def test_parting_offset_outside_the_part_is_an_invalid_spec() -> None:
    v, f = shapes.sphere()
    with pytest.raises(InvalidSpec, match="outside the part"):
        make_mold(v, f, MoldSpec(parting="z", parting_offset_mm=50.0))


def test_sprue_wider_than_the_part_is_an_invalid_spec() -> None:
    v, f = shapes.torus()
    with pytest.raises(InvalidSpec, match="sprue"):
        make_mold(v, f, MoldSpec(size_mm=10.0, sprue_diameter_mm=12.0))


def _bar(width: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed bar 80 mm long and ``width`` across: a pen, a mast, a sword."""
    import trimesh

    bar = trimesh.creation.box(extents=(80.0, width, width))
    return np.asarray(bar.vertices), np.asarray(bar.faces)


def test_a_part_thinner_than_the_default_sprue_gets_a_narrower_one() -> None:
    """The default 6 mm sprue refused every part under 6.7 mm across (a pen, a sword from
    a photo), although nobody had asked for 6 mm: the order was rejected for an option the
    shop cannot even set. Unasked, the sprue narrows to 0.9x the part's width."""
    v, f = _bar(4.0)
    result = make_mold(v, f, MoldSpec(size_mm=None))
    report = result.report
    assert report.gate.passed
    assert report.spec.sprue_diameter_mm is None
    assert report.sprue.diameter_bottom_mm == pytest.approx(0.9 * 4.0)
    assert report.cavity_volume_ml == pytest.approx(80.0 * 4.0 * 4.0 / 1000, rel=1e-6)
    # asked for explicitly, 6 mm stays 6 mm, and does not fit
    with pytest.raises(InvalidSpec, match="too large"):
        make_mold(v, f, MoldSpec(size_mm=None, sprue_diameter_mm=6.0))


def test_a_wide_part_keeps_the_default_sprue() -> None:
    v, f = _bar(20.0)
    report = make_mold(v, f, MoldSpec(size_mm=None)).report
    assert report.sprue.diameter_bottom_mm == pytest.approx(SPRUE_MM_DEFAULT)


def test_a_part_too_thin_for_any_sprue_is_refused_by_name() -> None:
    """Nobody asked for a sprue: the part, not the order, is at fault (``part_too_thin``,
    a rejected input, as a sheet is), and only once every parting was tried."""
    v, f = _bar(1.2)  # < 1.6 mm of room however turned; 2 mm vents need a wider sprue
    with pytest.raises(PartTooThinForSprue, match="too thin for a sprue") as info:
        make_mold(v, f, MoldSpec(size_mm=None))
    assert info.value.code == "part_too_thin" and info.value.rejects_input
    assert "make it thicker or larger" in info.value.message
    tried = info.value.detail["partings_tried"]
    assert len(tried) > 1 and all("too thin for a sprue" in t["refused"] for t in tried)


def _grooved_plate() -> tuple[np.ndarray, np.ndarray]:
    """A 1.8 mm plate (80 x 60) with a 0.6 mm groove cut along its length into one edge: the
    pulls along the plate have no undercut (they rank first) and leave 1.6 mm for a sprue;
    the pull through the face casts the groove, and has room."""
    body = m3.Manifold.cube((80.0, 60.0, 1.8), center=True)
    groove = m3.Manifold.cube((90.0, 20.0, 0.6), center=True).translate((0.0, 30.0, 0.0))
    mesh = (body - groove).to_mesh()
    return np.asarray(mesh.vert_properties[:, :3], np.float64), np.asarray(mesh.tri_verts)


def test_a_sprue_that_fits_no_parting_but_the_third_moves_on_to_it() -> None:
    """A printer's bed plate was refused as "mold options do not fit" (invalid_event) by its
    best-ranked parting, though pulling it through its face passes every gate."""
    v, f = _grooved_plate()
    report = make_mold(v, f, MoldSpec(size_mm=None)).report
    assert report.gate.passed and report.parting.chosen == "z"
    *refused, kept = report.parting.tried
    assert refused and all("too thin for a sprue" in t.refused for t in refused)
    assert kept.name == "z" and kept.passed
    # a sprue the order asks for moves on the same way ...
    asked = make_mold(v, f, MoldSpec(size_mm=None, sprue_diameter_mm=3.0)).report
    assert asked.parting.chosen == "z" and asked.sprue.diameter_bottom_mm == pytest.approx(3.0)
    # ... and when no parting has room for it, the order is at fault (invalid_spec)
    bar_v, bar_f = _bar(1.2)
    with pytest.raises(SprueTooLarge, match="too large") as info:
        make_mold(bar_v, bar_f, MoldSpec(size_mm=None, sprue_diameter_mm=3.0))
    assert isinstance(info.value, InvalidSpec) and info.value.code == "invalid_spec"


def test_a_sheet_is_refused_before_a_mold_is_cut() -> None:
    """A 0.1 mm build plate scaled to 80 mm passed every gate with a 0.0 ml cavity that no
    pour fills: a sheet is refused by name, with its mean thickness."""
    import trimesh

    plate = trimesh.creation.box(extents=(80.0, 60.0, 0.1))
    with pytest.raises(PartTooThin) as info:
        make_mold(np.asarray(plate.vertices), np.asarray(plate.faces), MoldSpec(size_mm=None))
    assert info.value.code == "part_too_thin" and info.value.rejects_input
    assert info.value.detail["mean_thickness_mm"] == pytest.approx(0.1, rel=0.01)
    # the same plate 2 mm thick is a castable plaque
    plaque = trimesh.creation.box(extents=(80.0, 60.0, 2.0))
    report = make_mold(
        np.asarray(plaque.vertices), np.asarray(plaque.faces), MoldSpec(size_mm=None)
    ).report
    assert report.gate.passed
    assert report.cavity_volume_ml == pytest.approx(80.0 * 60.0 * 2.0 / 1000, rel=1e-6)


def test_keys_that_cannot_fit_are_a_typed_failure() -> None:
    v, f = shapes.c_channel()  # boxy: the cavity fills its whole footprint
    with pytest.raises(KeysDoNotFit) as info:
        make_mold(v, f, MoldSpec(parting="y"), MoldParams(key_margin_growth_steps=0))
    assert info.value.code == "keys_do_not_fit"


# --- each gate check -----------------------------------------------------------------------


def test_wall_thinner_than_the_spec_is_caught() -> None:
    thicker = SPEC.model_copy(update={"wall_mm": SPEC.wall_mm + 1.0})
    err = failed_check(torus_geometry(), thicker)
    assert err.check == "min_wall"
    wall = next(c for c in err.detail["checks"] if c["name"] == "min_wall")
    assert wall["measured"] == pytest.approx(SPEC.wall_mm, abs=1e-3)


def _with_extra_key(geom: MoldGeometry, factor: float) -> tuple[MoldGeometry, float]:
    """Cut one more key into the real halves, ``factor`` of the way from the axis to key 0."""
    key = geom.layout.keys[0]
    extra = dataclasses.replace(key, x=key.x * factor, y=key.y * factor)
    gap = geom.solid.min_gap(extra.socket(PARAMS), 10.0)
    bad = dataclasses.replace(
        geom, half_a=geom.half_a - extra.socket(PARAMS), half_b=geom.half_b + extra.male(PARAMS)
    )
    return bad, gap


def test_key_too_close_to_the_cavity_is_caught() -> None:
    geom = torus_geometry()
    factor = next(f for f in np.arange(0.99, 0.5, -0.01) if _with_extra_key(geom, f)[1] < 2.0)
    bad, gap = _with_extra_key(geom, factor)
    assert 0.0 < gap < SPEC.wall_mm
    err = failed_check(bad)
    assert err.check == "min_wall"
    wall = next(c for c in err.detail["checks"] if c["name"] == "min_wall")
    # measured on the key gap found in the closed halves: the socket's part below the parting
    # plane is filled by half B, so the real gap is a little farther than the cutting tool
    assert gap - 1e-6 <= wall["measured"] < SPEC.wall_mm


def test_socket_breaking_into_the_cavity_is_caught() -> None:
    bad, gap = _with_extra_key(torus_geometry(), 0.75)
    assert gap == 0.0
    err = failed_check(bad)
    assert err.check == "cavity_volume"  # its gap merged with the cavity: too much void
    cavity = next(c for c in err.detail["checks"] if c["name"] == "cavity_volume")
    assert 0.0 < cavity["measured"] < 0.005  # would hide inside the spec's 0.5 %


def test_overlapping_halves_are_caught() -> None:
    geom = torus_geometry()
    lo = geom.layout.block_min
    # a lump on B that reaches up into A's material
    lump = m3.Manifold.cube((4.0, 4.0, 6.0)).translate((float(lo[0]) + 1, float(lo[1]) + 12, -3.0))
    bad = dataclasses.replace(geom, half_b=geom.half_b + lump)
    err = failed_check(bad)
    assert err.check == "no_overlap"
    overlap = next(c for c in err.detail["checks"] if c["name"] == "no_overlap")
    assert overlap["measured"] == pytest.approx(4.0 * 4.0 * 3.0, rel=1e-6)


def test_a_second_shell_is_caught() -> None:
    geom = torus_geometry()
    hi = geom.layout.block_max
    speck = m3.Manifold.cube((2.0, 2.0, 2.0)).translate((0.0, 0.0, float(hi[2]) + 5.0))
    assert failed_check(dataclasses.replace(geom, half_a=geom.half_a + speck)).check == (
        "single_shell"
    )


def test_empty_half_is_caught() -> None:
    assert failed_check(dataclasses.replace(torus_geometry(), half_a=m3.Manifold())).check == (
        "status"
    )


def test_cavity_that_differs_from_the_part_is_caught() -> None:
    geom = torus_geometry()
    bigger = geom.solid.scale((1.01, 1.01, 1.01))  # the part the cavity should have held
    err = failed_check(dataclasses.replace(geom, solid=bigger))
    assert err.check == "cavity_volume"


def _cube_stl(cubes: list[m3.Manifold]) -> bytes:
    """STL of several cubes' triangles, unioned by nothing: how a bad exporter would write."""
    verts, faces, offset = [], [], 0
    for cube in cubes:
        mesh = cube.to_mesh()
        verts.append(mesh.vert_properties[:, :3])
        faces.append(mesh.tri_verts.astype(np.int64) + offset)
        offset += len(mesh.vert_properties)
    return stl_bytes(np.concatenate(verts), np.concatenate(faces), "test")


def test_stl_edge_report_counts_defects() -> None:
    cube = m3.Manifold.cube((1.0, 1.0, 1.0))
    good = stl_edge_report(_cube_stl([cube]))
    assert good.closed_two_manifold and good.shells == 1 and good.edges == 18
    # two cubes touching along one edge: after welding that edge has four triangles
    edge_touch = stl_edge_report(_cube_stl([cube, cube.translate((1.0, 1.0, 0.0))]))
    assert edge_touch.overshared_edges >= 1 and not edge_touch.closed_two_manifold
    # a missing triangle leaves three boundary edges
    mesh = cube.to_mesh()
    open_stl = stl_bytes(mesh.vert_properties[:, :3], mesh.tri_verts[1:], "test")
    assert stl_edge_report(open_stl).boundary_edges == 3
    # a flipped triangle: its edges run the same way as their neighbours'
    flipped = mesh.tri_verts.copy()
    flipped[0] = flipped[0, ::-1]
    rep = stl_edge_report(stl_bytes(mesh.vert_properties[:, :3], flipped, "test"))
    assert rep.misoriented_edges == 3


def test_stl_that_welds_badly_is_caught_by_the_gate() -> None:
    geom = torus_geometry()
    out = export_halves(geom, SPEC)
    cube = m3.Manifold.cube((1.0, 1.0, 1.0))
    bad_stl = _cube_stl([cube, cube.translate((1.0, 1.0, 0.0))])
    inp = dataclasses.replace(gate_input(geom, out, PARAMS), stl_b=bad_stl)
    with pytest.raises(MoldGateFailed) as info:
        run_gate(inp, SPEC, PARAMS)
    assert info.value.check == "stl_edges"


def test_a_3mf_lib3mf_cannot_read_is_caught() -> None:
    check = check_three_mf(b"PK\x03\x04 not a package", (10, 10))
    assert not check.passed and check.name == "three_mf"


def test_gate_input_fields_are_what_the_gate_reads() -> None:
    names = {f.name for f in dataclasses.fields(GateInput)}
    assert names == {
        "half_a", "half_b", "part", "part_vertices", "layout", "channels",
        "stl_a", "stl_b",
    }  # fmt: skip


def _spindle_torus(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """One closed shell whose tube passes through the axis: it crosses itself."""
    major, minor = 0.3, 0.5
    u, v = np.meshgrid(np.arange(n) * 2 * np.pi / n, np.arange(n) * 2 * np.pi / n, indexing="ij")
    x = (major + minor * np.cos(v)) * np.cos(u)
    y = (major + minor * np.cos(v)) * np.sin(u)
    z = minor * np.sin(v)
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a, b = i * n + j, ((i + 1) % n) * n + j
    c, d = ((i + 1) % n) * n + (j + 1) % n, i * n + (j + 1) % n
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)
    return vertices, faces


def test_self_intersecting_part_is_rejected() -> None:
    with pytest.raises(PartSelfIntersecting) as info:
        make_mold(*_spindle_torus())
    assert info.value.rejects_input and info.value.detail["faces"] > 0


def _refusing_3mf(*_: object) -> bytes:
    raise MoldGateFailed("three_mf", "lib3mf refused to write the 3MF: broken")


def test_a_failed_gate_wins_over_a_refused_3mf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 3MF is written beside the gate, on a second thread; the error is still the
    gate's, as when the 3MF came only after a passed gate, and no thread is left behind."""
    import threading

    import mold.core

    def failing_gate(*_: object) -> None:
        raise MoldGateFailed("min_wall", "min_wall failed: measured 1, limit 4")

    monkeypatch.setattr(mold.core, "write_three_mf", _refusing_3mf)
    monkeypatch.setattr(mold.core, "run_gate", failing_gate)
    v, f = shapes.sphere(1.0, 24)
    with pytest.raises(MoldGateFailed) as info:
        make_mold(v, f, MoldSpec(parting="z"))
    assert info.value.check == "min_wall"
    assert not [t for t in threading.enumerate() if t.name.startswith("mold-3mf")]


def test_a_refused_3mf_fails_a_passed_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    import mold.core

    monkeypatch.setattr(mold.core, "write_three_mf", _refusing_3mf)
    v, f = shapes.sphere(1.0, 24)
    with pytest.raises(MoldGateFailed) as info:
        make_mold(v, f, MoldSpec(parting="z"))
    assert info.value.check == "three_mf"
