"""`sculpt mold` CLI and the adapter's error mapping, on a generated part."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mold import InvalidSpec, MoldGateFailed, MoldSpec, PartNotManifold, shapes
from mold.export import stl_bytes
from sculptsvc.cli import app
from sculptsvc.commands.mold import load_part, to_service_error
from sculptsvc.errors import InvalidEvent, MoldFailed, UnrepairableMesh

runner = CliRunner()
FILES = ("mold_a.stl", "mold_b.stl", "mold.3mf", "mold.json")


def write_part(path: Path, open_part: bool = False) -> Path:
    v, f = shapes.torus(segments=32)
    path.write_bytes(stl_bytes(v.astype(np.float32), f[1:] if open_part else f, "part"))
    return path


def test_writes_the_four_files_and_prints_the_report(tmp_path: Path) -> None:
    part = write_part(tmp_path / "torus.stl")
    out = tmp_path / "out"
    result = runner.invoke(app, ["mold", str(part), "--out", str(out), "--json", "--wall-mm", "5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    report = json.loads(result.stdout)
    assert report == json.loads((out / "mold.json").read_text())
    assert report["spec"]["wall_mm"] == 5.0 and report["gate"]["passed"]
    assert (
        report["halves"][0]["sha256"]
        == hashlib.sha256((out / "mold_a.stl").read_bytes()).hexdigest()
    )


def test_a_rerun_writes_identical_bytes(tmp_path: Path) -> None:
    part = write_part(tmp_path / "torus.stl")
    digests = []
    for name in ("one", "two"):
        result = runner.invoke(app, ["mold", str(part), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert "gate:" in result.stdout
        digests.append(
            [hashlib.sha256((tmp_path / name / f).read_bytes()).hexdigest() for f in FILES]
        )
    assert digests[0] == digests[1]


def test_open_part_without_repair_is_rejected_with_exit_2(tmp_path: Path) -> None:
    part = write_part(tmp_path / "open.stl", open_part=True)
    result = runner.invoke(app, ["mold", str(part), "--out", str(tmp_path / "o"), "--no-repair"])
    assert result.exit_code == 2
    assert json.loads(result.stderr)["error"] == "mesh_unrepairable"
    assert not (tmp_path / "o").exists()


def test_open_part_is_repaired_by_default(tmp_path: Path) -> None:
    loaded = load_part(write_part(tmp_path / "open.stl", open_part=True))
    assert loaded.repair != "none"
    assert len(loaded.faces) > 0


def test_impossible_spec_is_a_usage_error(tmp_path: Path) -> None:
    part = write_part(tmp_path / "torus.stl")
    result = runner.invoke(
        app, ["mold", str(part), "--out", str(tmp_path / "o"), "--wall-mm", "0.2"]
    )
    assert result.exit_code == 2
    assert "wall_mm" in result.output


def test_mold_errors_map_onto_the_service_tree() -> None:
    rejected = to_service_error(PartNotManifold("open", manifold_status="NotManifold"))
    assert isinstance(rejected, UnrepairableMesh)
    assert rejected.detail == {"mold_code": "part_not_manifold", "manifold_status": "NotManifold"}
    assert isinstance(to_service_error(InvalidSpec("sprue")), InvalidEvent)
    failed = to_service_error(MoldGateFailed("min_wall", "thin"))
    assert isinstance(failed, MoldFailed) and failed.detail["check"] == "min_wall"
    assert not failed.retryable


@pytest.mark.parametrize("missing", ["nothing.stl"])
def test_missing_input_is_a_usage_error(tmp_path: Path, missing: str) -> None:
    result = runner.invoke(app, ["mold", str(tmp_path / missing), "--out", str(tmp_path)])
    assert result.exit_code == 2


def test_an_inside_out_part_is_repaired_not_refused(tmp_path: Path) -> None:
    """Closedness comes from the intersection check's own manifold conversion; a closed
    but inside-out part (negative volume) goes to the mesh stage, which turns it out."""
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    ball.invert()
    path = tmp_path / "inside_out.stl"
    ball.export(path)
    part = load_part(path)
    assert part.repair == "mesh_stage"
    assert trimesh.Trimesh(part.vertices, part.faces).volume > 0.95 * abs(ball.volume)


def test_a_glb_face_with_a_missing_vertex_is_a_typed_refusal(tmp_path: Path) -> None:
    """assimp's IndexOutOfRange.gltf: index 255 of 24 vertices ended sculpt mold in an
    IndexError traceback (exit 1); the mesh stage already refused it by name."""
    from sculptsvc.mesh.gltf import pack_glb

    v, f = shapes.torus(segments=16)
    f = f.astype(np.uint32)
    f[3, 1] = 255 + len(v)
    positions = v.astype(np.float32).tobytes()
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(positions) + f.nbytes}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions)},
            {"buffer": 0, "byteOffset": len(positions), "byteLength": f.nbytes},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(v),
                "type": "VEC3",
                "min": v.min(axis=0).tolist(),
                "max": v.max(axis=0).tolist(),
            },
            {"bufferView": 1, "componentType": 5125, "count": f.size, "type": "SCALAR"},
        ],
    }
    path = tmp_path / "missing-vertex.glb"
    path.write_bytes(pack_glb(doc, positions + f.tobytes()))
    with pytest.raises(UnrepairableMesh, match="reference vertices that do not exist"):
        load_part(path)
    result = runner.invoke(app, ["mold", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("case", ["closed", "inside_out", "open"])
def test_mold_file_ends_as_load_part_then_run_mold(tmp_path: Path, case: str) -> None:
    """``sculpt mold`` lets the mold count self-intersections beside its first steps instead
    of checking first; the part, the repair and the files are those of the checked path."""
    import trimesh

    from sculptsvc.commands.mold import mold_file, run_mold

    ball = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    if case == "inside_out":
        ball.invert()
    if case == "open":
        ball = trimesh.Trimesh(ball.vertices, ball.faces[1:], process=False)
    path = tmp_path / f"{case}.stl"
    ball.export(path)
    spec = MoldSpec()
    checked = load_part(path, spec=spec)
    expected = run_mold(checked, spec, tmp_path / "checked")
    part, result = mold_file(path, spec, tmp_path / "speculated")
    assert part.repair == checked.repair == ("none" if case == "closed" else "mesh_stage")
    assert result.files() == expected.files()
    for name in FILES:
        assert (tmp_path / "speculated" / name).read_bytes() == (
            tmp_path / "checked" / name
        ).read_bytes()
    refusal = pytest.raises(UnrepairableMesh, match="repair is off")
    with refusal if case != "closed" else contextlib.nullcontext():
        mold_file(path, spec, tmp_path / "no-repair", repair=False)
