"""`sculpt make` end to end with the real mesh stage, glTF validator and mold gate:
byte-identical artifacts across processes, corpus pictures of every kind, typed rejections."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sculptsvc.commands.make import SAMPLE, make_files
from sculptsvc.errors import ImageTooLarge, InvalidEvent, InvalidImage, NoSubject, SculptError
from sculptsvc.events import InlineImage, OrderPlaced
from sculptsvc.gltf_validator import validator_available
from sculptsvc.pipeline import (
    ARTIFACT_NAMES,
    PipelineOptions,
    PipelineResult,
    options_from_order,
    place_in_mm,
    report_without_timings,
    run_pipeline,
)
from sculptsvc.reconstruct.base import ColoredMesh
from sculptsvc.reconstruct.classic import ClassicReconstructor
from sculptsvc.settings import Settings
from sculptsvc.stylize.classic import ClassicStylizer
from tests.unit.test_imaging import png_header_only

REPO = Path(__file__).resolve().parents[2]
SCULPT = [sys.executable, "-m", "sculptsvc.cli"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(image: bytes, **options: object) -> PipelineResult:
    return run_pipeline(
        image, PipelineOptions(**options), ClassicStylizer(), ClassicReconstructor(), Settings()
    )


def assert_castable(result: PipelineResult) -> None:
    report = result.report
    assert set(result.artifacts) == {*ARTIFACT_NAMES, "report.json"}
    assert abs(report.mesh.triangles - 20_000) <= 0.02 * 20_000
    assert report.mesh.watertight and report.mesh.shells == 1 and report.mesh.outward
    assert report.mold.gate_passed and report.mold.cavity_volume_ml > 1.0
    assert max(report.mesh.extents) == pytest.approx(report.options.size_mm, rel=0.02)
    if validator_available():
        assert report.validation.validator == "khronos"
        assert report.validation.glb_errors == 0 and report.validation.glb_warnings == 0
    glb = result.artifacts["model.glb"]
    assert glb[:4] == b"glTF" and struct.unpack("<I", glb[8:12])[0] == len(glb)
    for name in ("mold_a.stl", "mold_b.stl"):  # binary STL: 84 + 50 bytes per triangle
        stl = result.artifacts[name]
        assert len(stl) == 84 + 50 * struct.unpack("<I", stl[80:84])[0]
    assert Image.open(io.BytesIO(result.artifacts["preview.png"])).size == (512, 512)
    for name, info in report.artifacts.items():
        assert info.sha256 == sha(result.artifacts[name])


@pytest.mark.slow
def test_make_cli_and_library_give_byte_identical_artifacts(tmp_path: Path) -> None:
    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    proc = subprocess.run(
        [*SCULPT, "make", str(SAMPLE), "--out", str(cli_out), "--seed", "5", "--json"],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["report"]["mold"]["gate_passed"] is True

    result = make_files(SAMPLE, lib_out, seed=5)
    assert_castable(result)
    assert result.report.reconstruct.silhouette_iou is not None
    assert result.report.reconstruct.silhouette_iou > 0.95
    for name in ARTIFACT_NAMES:
        assert sha((cli_out / name).read_bytes()) == sha((lib_out / name).read_bytes()), name
    # report.json differs only in its timings.
    assert report_without_timings((cli_out / "report.json").read_bytes()) == (
        report_without_timings((lib_out / "report.json").read_bytes())
    )
    assert (lib_out / "stylized.png").is_file()


CORPUS_KINDS = {
    "spot.png": "render with transparency",
    "horse.png": "black silhouette on white (alpha uninformative)",
    "logo.png": "illustration on a disc, split by a white stripe",
    "astronaut.png": "photograph",
}


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize("name", list(CORPUS_KINDS))
def test_corpus_pictures_become_castable_sculptures(corpus: Path, name: str) -> None:
    result = run((corpus / "images" / name).read_bytes(), seed=0)
    assert_castable(result)
    assert result.report.reconstruct.silhouette_iou is not None
    assert result.report.reconstruct.silhouette_iou > 0.9


@pytest.mark.slow
def test_solid_mode_has_one_colour_and_no_texture() -> None:
    result = run(SAMPLE.read_bytes(), mode="solid", color="#D04040", size_mm=60.0)
    assert_castable(result)
    glb = result.artifacts["model.glb"]
    json_len = struct.unpack("<I", glb[12:16])[0]
    document = json.loads(glb[20 : 20 + json_len])
    assert "images" not in document and "textures" not in document
    factor = document["materials"][0]["pbrMetallicRoughness"]["baseColorFactor"]
    expected = [((c / 255 + 0.055) / 1.055) ** 2.4 for c in (0xD0, 0x40, 0x40)]
    assert factor[:3] == pytest.approx(expected, abs=0.01)


def bad_pictures() -> dict[str, tuple[bytes, type[SculptError]]]:
    def encoded(image: Image.Image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return buf.getvalue()

    good = encoded(Image.fromarray(np.full((128, 128, 3), 90, np.uint8)))
    return {
        "zero bytes": (b"", InvalidImage),
        "truncated png": (good[: len(good) // 2], InvalidImage),
        "1x1": (encoded(Image.new("RGB", (1, 1))), InvalidImage),
        "20000x20000 header": (png_header_only(20_000, 20_000), ImageTooLarge),
        "not an image": (b"<html>not a picture</html>" * 20, InvalidImage),
        "all white": (encoded(Image.new("RGB", (256, 256), "white")), NoSubject),
    }


@pytest.mark.parametrize("name", list(bad_pictures()))
def test_bad_pictures_get_typed_errors(name: str) -> None:
    data, error = bad_pictures()[name]
    with pytest.raises(error) as info:
        run(data)
    assert not info.value.retryable


def test_cli_rejection_exits_2_with_the_code(tmp_path: Path) -> None:
    picture = tmp_path / "white.png"
    Image.new("RGB", (256, 256), "white").save(picture)
    proc = subprocess.run(
        [*SCULPT, "make", str(picture), "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert json.loads(last)["error"] == "no_subject"
    assert not (tmp_path / "out" / "model.glb").exists()


def test_solid_mode_needs_a_colour() -> None:
    with pytest.raises(InvalidEvent):
        PipelineOptions(mode="solid")


def test_options_follow_the_order() -> None:
    data = InlineImage(media_type="image/png", data_base64="AAAA")
    order = OrderPlaced(order_id="ord-1", image=data, size_mm=120.0, mode="solid", color="#112233")
    options = options_from_order(order, Settings(target_faces=15_000))
    assert options.size_mm == 120.0 and options.mode == "solid" and options.color == "#112233"
    assert options.seed == order.effective_seed() and options.target_faces == 15_000
    assert options_from_order(order, Settings()).seed == options.seed  # replays repeat


def test_placement_scales_stands_and_keeps_colours() -> None:
    vertices = np.array([[10, 20, -5], [110, 20, -5], [10, 70, 5], [110, 70, 5]], float)
    seen: list[np.ndarray] = []

    def source(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        seen.append(points)
        return np.zeros((len(points), 4), np.uint8)

    mesh = ColoredMesh(vertices, np.array([[0, 1, 2], [1, 3, 2]]), color_source=source)
    placed = place_in_mm(mesh, 80.0)
    lo, hi = placed.vertices.min(0), placed.vertices.max(0)
    assert (hi - lo).max() == pytest.approx(80.0)
    assert lo[1] == pytest.approx(0.0) and lo[0] == pytest.approx(-hi[0])
    assert placed.color_source is not None
    placed.color_source(placed.vertices, np.zeros_like(placed.vertices))
    assert np.allclose(seen[0], vertices)  # the source sees its own units
