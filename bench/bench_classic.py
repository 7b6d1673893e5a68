"""Classic (weight-free) path per corpus picture: decode, stylize, reconstruct, and, when
the mesh and mold stages are installed, the whole ``sculpt make`` pipeline by stage.

Target (issue #5): the whole ``make`` under ``TARGET_MAKE_S`` per picture on a 2-core
machine. Writes ``bench/results/contact_sheet.png`` (previews of every picture) and
``bench/results/classic.json``. Run: ``.venv/bin/python -m bench classic``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import REPO_ROOT, corpus_dir, print_table
from sculptsvc.imaging import decode_image
from sculptsvc.reconstruct.classic import ClassicReconstructor, silhouette_iou
from sculptsvc.settings import Settings
from sculptsvc.stylize.classic import ClassicStylizer

TARGET_MAKE_S = 10.0
RESULTS = REPO_ROOT / "bench" / "results"
TILE_PX = 256


def pictures() -> list[Path]:
    images = sorted((corpus_dir() / "images").glob("*.png"))
    return [REPO_ROOT / "samples" / "sample.png", *images]


def bench_stages(path: Path, settings: Settings) -> tuple[dict[str, object], np.ndarray]:
    """Decode, stylize, reconstruct one picture; returns the row and a stylized tile."""
    data = path.read_bytes()
    t0 = time.perf_counter()
    image = decode_image(
        data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    t1 = time.perf_counter()
    styled = ClassicStylizer().stylize(image, seed=0)
    t2 = time.perf_counter()
    mesh = ClassicReconstructor().reconstruct(styled, seed=0)
    t3 = time.perf_counter()
    row: dict[str, object] = {
        "picture": path.name,
        "pixels": f"{image.shape[1]}x{image.shape[0]}",
        "decode_s": t1 - t0,
        "stylize_s": t2 - t1,
        "reconstruct_s": t3 - t2,
        "raw_faces": len(mesh.faces),
        "iou": silhouette_iou(mesh.vertices, mesh.faces, styled.mask),
    }
    return row, styled.rgba


def bench_make(path: Path, settings: Settings) -> tuple[dict[str, object], bytes] | None:
    """The whole pipeline, when it is importable; None otherwise."""
    try:
        from sculptsvc.pipeline import PipelineOptions, run_pipeline
    except ImportError:
        return None
    started = time.perf_counter()
    result = run_pipeline(
        path.read_bytes(),
        PipelineOptions(seed=0),
        ClassicStylizer(),
        ClassicReconstructor(),
        settings,
    )
    total = time.perf_counter() - started
    report = result.report
    row: dict[str, object] = {"picture": path.name}
    row.update({f"{name}_s": seconds for name, seconds in report.timings.items()})
    row.update(
        {
            "total_s": total,
            "triangles": report.mesh.triangles,
            "watertight": report.mesh.watertight,
            "glb_errors": report.validation.glb_errors,
            "gate": report.mold.gate_passed,
            "cavity_ml": report.mold.cavity_volume_ml,
            "target": "ok" if total <= TARGET_MAKE_S else f"> {TARGET_MAKE_S:.0f} s",
        }
    )
    return row, result.artifacts["preview.png"]


def contact_sheet(tiles: list[tuple[str, Image.Image]], path: Path, columns: int = 5) -> None:
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * TILE_PX, rows * TILE_PX), (32, 32, 40))
    for i, (_, tile) in enumerate(tiles):
        tile = tile.convert("RGBA")
        tile.thumbnail((TILE_PX, TILE_PX))
        backdrop = Image.new("RGBA", (TILE_PX, TILE_PX), (32, 32, 40, 255))
        backdrop.alpha_composite(tile, ((TILE_PX - tile.width) // 2, (TILE_PX - tile.height) // 2))
        sheet.paste(backdrop.convert("RGB"), ((i % columns) * TILE_PX, (i // columns) * TILE_PX))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    settings = Settings()
    stage_rows, make_rows = [], []
    stylized_tiles: list[tuple[str, Image.Image]] = []
    preview_tiles: list[tuple[str, Image.Image]] = []
    for path in pictures():
        row, rgba = bench_stages(path, settings)
        stage_rows.append(row)
        stylized_tiles.append((path.name, Image.fromarray(rgba)))
        made = bench_make(path, settings)
        if made is not None:
            make_row, preview = made
            make_rows.append(make_row)
            preview_tiles.append((path.name, Image.open(__import__("io").BytesIO(preview))))
    print_table("classic: decode / stylize / reconstruct (seed 0)", stage_rows)
    contact_sheet(stylized_tiles, RESULTS / "stylized_sheet.png")
    if make_rows:
        print_table(f"classic: sculpt make by stage (target {TARGET_MAKE_S:.0f} s)", make_rows)
        contact_sheet(preview_tiles, RESULTS / "contact_sheet.png")
    else:
        print("sculptsvc.pipeline not importable yet: make rows skipped\n")
    (RESULTS / "classic.json").write_text(
        json.dumps({"stages": stage_rows, "make": make_rows}, indent=2, default=str)
    )
    print(f"contact sheets in {RESULTS}")


if __name__ == "__main__":
    main()
