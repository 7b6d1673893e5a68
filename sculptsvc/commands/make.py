"""`sculpt make` and `sculpt demo`: one picture through the whole order pipeline, no Kafka.

    sculpt make IMAGE --out DIR [--mode multicolor|solid] [--color '#RRGGBB']
                [--size-mm 80] [--wall-mm 4] [--seed N] [--json]
    sculpt demo [--out out/demo]            # make on samples/sample.png

Writes model.glb, preview.png, mold_a.stl, mold_b.stl, mold.3mf, report.json (and the
unpublished stylized.png). Same picture and options -> byte-identical artifacts; only
report.json's ``timings`` differ (see ``sculptsvc.pipeline``). A typed rejection prints
its code as JSON on stderr and exits 2 (bad input) or 3 (processing failed).
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mold import spec as bounds
from sculptsvc import artifacts
from sculptsvc.commands._errors import EXIT_REJECTED, exit_with
from sculptsvc.commands._files import write_atomic
from sculptsvc.errors import SculptError
from sculptsvc.options import MODE_HELP, SEED_MAX, Mode

if TYPE_CHECKING:
    from sculptsvc.pipeline import PipelineResult

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "sample.png"


def make_files(
    image: Path,
    out: Path,
    *,
    mode: str = Mode.multicolor,
    color: str | None = None,
    size_mm: float = bounds.SIZE_MM_DEFAULT,
    wall_mm: float = bounds.WALL_MM_DEFAULT,
    seed: int = 0,
) -> PipelineResult:
    """Run the order job on ``image`` with the configured backends, in this process through
    the worker pool's in-process mode (the service's job path); write every artifact."""
    from sculptsvc.jobs import OrderJob, init_worker, run_pipeline_job
    from sculptsvc.pipeline import PipelineOptions
    from sculptsvc.settings import Settings
    from sculptsvc.workers import WorkerPool

    settings = Settings()
    options = PipelineOptions(
        mode=mode,
        color=color,
        size_mm=size_mm,
        wall_mm=wall_mm,
        seed=seed,
        target_faces=settings.target_faces,
    )
    job = OrderJob(image.stem, 1, options, image.read_bytes())

    async def run() -> PipelineResult:
        init = partial(init_worker, settings.model_dump_json(), with_helper=True)
        async with WorkerPool.from_settings(run_pipeline_job, init, settings, inline=True) as pool:
            return await pool.submit(job)

    import asyncio  # here: `sculpt mold` and `sculpt mesh` register this module too

    result = asyncio.run(run())
    for name, data in {**result.artifacts, **result.extras()}.items():
        write_atomic(out / name, data)
    return result


def summary_rows(result: PipelineResult) -> list[tuple[str, str]]:
    """The few numbers a person checks first, as (label, value) rows."""
    r = result.report
    validation = (
        f"{r.validation.glb_errors} errors, {r.validation.glb_warnings} warnings"
        if r.validation.validator == "khronos"
        else "skipped (validator not installed)"
    )
    rows = [
        ("stylizer / reconstructor", f"{r.stylize.backend} / {r.reconstruct.backend}"),
        ("triangles", str(r.mesh.triangles)),
        ("watertight", str(r.mesh.watertight)),
        ("shells", str(r.mesh.shells)),
        ("size (mm)", " x ".join(f"{v:.1f}" for v in r.mesh.extents)),
        ("glTF validator", validation),
        ("mold parting", r.mold.parting),
        ("mold gate", "passed" if r.mold.gate_passed else "FAILED"),
        ("mold cavity (ml)", f"{r.mold.cavity_volume_ml:.1f}"),
    ]
    if r.reconstruct.silhouette_iou is not None:
        rows.insert(3, ("silhouette IoU", f"{r.reconstruct.silhouette_iou:.3f}"))
    rows += [(f"time {stage} (s)", f"{seconds:.2f}") for stage, seconds in r.timings.items()]
    return rows


def _report(result: PipelineResult, out: Path, as_json: bool) -> None:
    if as_json:
        document = {
            "out": str(out),
            "files": sorted([*result.artifacts, artifacts.STYLIZED_NAME]),
            "report": json.loads(result.artifacts["report.json"]),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    rows = summary_rows(result)
    width = max(len(label) for label, _ in rows)
    typer.echo(f"wrote {out}/: " + ", ".join(sorted([*result.artifacts, artifacts.STYLIZED_NAME])))
    for label, value in rows:
        typer.echo(f"  {label.ljust(width)}  {value}")


def _run(
    image: Path,
    out: Path,
    *,
    mode: Mode,
    color: str | None,
    size_mm: float,
    wall_mm: float,
    seed: int,
    as_json: bool,
) -> None:
    from sculptsvc.logging import configure_logging
    from sculptsvc.settings import Settings

    settings = Settings()
    # Logs go to stderr (stdout carries the --json document), readable by a person.
    configure_logging(settings.log_level, "console")
    try:
        result = make_files(
            image,
            out,
            mode=mode.value,
            color=color,
            size_mm=size_mm,
            wall_mm=wall_mm,
            seed=seed,
        )
    except SculptError as err:
        exit_with(err)
    except ValueError as err:  # pydantic: options out of range
        typer.echo(json.dumps({"error": "invalid_options", "message": str(err)}), err=True)
        raise typer.Exit(EXIT_REJECTED) from None
    _report(result, out, as_json)


def register(app: typer.Typer) -> None:
    @app.command("make")
    def make_command(
        image: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="IMAGE"),
        out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
        mode: Mode = typer.Option(Mode.multicolor, "--mode", help=MODE_HELP),
        color: str | None = typer.Option(
            None, "--color", help="'#RRGGBB': the colour of a solid sculpture."
        ),
        size_mm: float = typer.Option(
            bounds.SIZE_MM_DEFAULT,
            "--size-mm",
            help=f"Longest side in mm ({bounds.SIZE_MM_MIN:g}-{bounds.SIZE_MM_MAX:g}).",
        ),
        wall_mm: float = typer.Option(
            bounds.WALL_MM_DEFAULT,
            "--wall-mm",
            help=f"Mold wall in mm ({bounds.WALL_MM_MIN:g}-{bounds.WALL_MM_MAX:g}).",
        ),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Turn a picture into a sculpture (GLB) and its two-part mold (STL, 3MF)."""
        _run(
            image,
            out,
            mode=mode,
            color=color,
            size_mm=size_mm,
            wall_mm=wall_mm,
            seed=seed,
            as_json=as_json,
        )

    @app.command("demo")
    def demo_command(
        out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Output directory."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """`sculpt make` on the bundled sample picture (samples/sample.png)."""
        if not SAMPLE.is_file():
            typer.echo(f"{SAMPLE} is missing: run `python samples/make_sample.py`", err=True)
            raise typer.Exit(1)
        _run(
            SAMPLE,
            out,
            mode=Mode.multicolor,
            color=None,
            size_mm=bounds.SIZE_MM_DEFAULT,
            wall_mm=bounds.WALL_MM_DEFAULT,
            seed=0,
            as_json=as_json,
        )
        if not as_json:
            typer.echo(f"open {out / 'model.glb'} in any glTF viewer; print the mold halves.")
