"""Child process of ``bench_speed``: the pipeline with each stage's wall, CPU and peak memory.

Run by path, with ``PYTHONPATH`` naming the checkout to measure (this tree or the baseline
commit), so the same probe measures the code before and after a change:

    python bench/_probe.py make IMAGE OUT_DIR RESULT.json    # one cold `sculpt make`
    python bench/_probe.py warm RESULT.json IMAGE...          # one warm worker, many orders

Stages are the pipeline's own (``sculptsvc.pipeline._timed``, wrapped here): ``cpu_s`` is
this process's CPU time over the stage (all its threads: OSMesa, manifold3d), ``peak_mib``
the largest resident set during the stage (Linux: the high-water mark is reset at each
stage's start through ``/proc/self/clear_refs``). ``startup`` is process start until the
first stage (interpreter, imports, settings, backends). A stage helper's CPU time (the mold
and the preview, made there by ``sculpt make`` and by a worker with a spare core) is not in
this process's ``cpu_s``.
"""

from __future__ import annotations

import time

T0_WALL, T0_CPU = time.perf_counter(), time.process_time()

import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

STAGES: dict[str, dict[str, float]] = {}
_FIRST_STAGE: list[tuple[float, float, float]] = []


def _peak_mib() -> float:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+)", status)
    return int(match[1]) / 1024 if match else float("nan")


def _reset_peak() -> None:
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@contextmanager
def _probe(timings: dict[str, float], stage: str) -> Iterator[None]:
    if stage == "total":  # wraps the other stages: timed, but no peak reset inside them
        start = time.perf_counter()
        try:
            yield
        finally:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
        return
    if not _FIRST_STAGE:
        _FIRST_STAGE.append(
            (time.perf_counter() - T0_WALL, time.process_time() - T0_CPU, _peak_mib())
        )
    _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        seconds = time.perf_counter() - wall
        timings[stage] = timings.get(stage, 0.0) + seconds
        entry = STAGES.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0, "peak_mib": 0.0})
        entry["wall_s"] += seconds
        entry["cpu_s"] += time.process_time() - cpu
        entry["peak_mib"] = max(entry["peak_mib"], _peak_mib())


def _collection(step: str) -> None:
    """``sculptsvc.loading``'s ``pause_collection`` or ``modules_loaded``, as the command
    (``cli.main``) and a serve worker (``worker_main``) call them, in a tree that has them."""
    try:
        import sculptsvc.loading as loading
    except ImportError:  # a baseline from before it
        return
    getattr(loading, step)()


def _install() -> Any:
    _collection("pause_collection")  # first, as `sculpt make` and a worker do
    import sculptsvc.cli  # noqa: F401  (what `sculpt` imports before any command runs)
    import sculptsvc.pipeline as pipeline

    # The stage stopwatch: ``_timed`` before #11's restructuring, ``timed`` after it.
    for name in ("_timed", "timed"):
        if hasattr(pipeline, name):
            setattr(pipeline, name, _probe)
    return pipeline


def make(image: Path, out: Path, result: Path) -> None:
    _install()
    from sculptsvc.commands.make import make_files

    make_files(image, out)
    wall, cpu, peak = _FIRST_STAGE[0]
    stages = {"startup": {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak}, **STAGES}
    result.write_text(json.dumps({"stages": stages}))
    try:  # end as `sculpt make` ends in the tree measured
        from sculptsvc.commands._exit import exit_now
    except ImportError:
        return
    exit_now(0)


def warm(result: Path, images: list[Path]) -> None:
    """A ``sculpt serve`` worker of the tree measured: its ``init_worker`` (models, and a
    stage helper where that tree gives a worker with a spare core one) and its job; a tree
    from before ``sculptsvc.jobs`` ran ``run_pipeline`` in the worker itself."""
    pipeline = _install()
    from sculptsvc.settings import Settings

    settings = Settings()
    options = pipeline.PipelineOptions()  # 80 mm, 4 mm wall, 20k triangles, multicolor
    try:
        from sculptsvc.jobs import OrderJob, init_worker, run_pipeline_job
    except ImportError:
        from sculptsvc.ai.backends import load_reconstructor, load_stylizer

        stylizer, reconstructor = load_stylizer(settings), load_reconstructor(settings)

        def run(image: bytes) -> None:
            pipeline.run_pipeline(image, options, stylizer, reconstructor, settings)
    else:
        state = init_worker(settings.model_dump_json())

        def run(image: bytes) -> None:
            run_pipeline_job(state, OrderJob("bench", 1, options, image))

    _collection("modules_loaded")  # as worker_main does once the worker is initialised

    def order(path: Path) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        run(path.read_bytes())
        return time.perf_counter() - wall, time.process_time() - cpu

    order(images[0])  # warm-up: imports, OSMesa context, validator process, allocator
    STAGES.clear()
    orders = [order(path) for path in images]
    result.write_text(
        json.dumps({"orders": [{"wall_s": w, "cpu_s": c} for w, c in orders], "stages": STAGES})
    )


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        warm(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
