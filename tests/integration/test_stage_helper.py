"""`sculpt make`'s helper process (``sculptsvc.workers.helper``): the mold and the preview
made there are the same bytes as in-process; errors keep their type; a helper that is gone
only moves the work back; large messages both ways at once do not deadlock."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sculptsvc.commands.make import SAMPLE
from sculptsvc.errors import InvalidImage, ProcessingFailed
from sculptsvc.jobs import STAGE_HELPER, start_helper
from sculptsvc.pipeline import ARTIFACT_NAMES, PipelineOptions, run_pipeline
from sculptsvc.reconstruct.classic import ClassicReconstructor
from sculptsvc.settings import Settings
from sculptsvc.stylize.classic import ClassicStylizer
from sculptsvc.workers.helper import HelperJob, HelperSpec, StageHelper
from tests.workers_jobs import OddInitError

REPO = Path(__file__).resolve().parents[2]
TEST_HELPER = HelperSpec(
    "test", jobs={"run": HelperJob("tests.workers_jobs:helper_job", "tests.workers_jobs:init")}
)


@pytest.fixture
def test_helper(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the helper imports tests.workers_jobs
    helper = StageHelper(TEST_HELPER)
    yield helper
    helper.close()


def _within(seconds: float, fn: Any) -> Any:
    """fn() on a thread; fails (instead of hanging the suite) if it takes longer."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (deadlock?)"
    return out[0]


def test_jobs_run_in_the_helper_and_errors_keep_their_type(test_helper: StageHelper) -> None:
    value, seconds = test_helper.submit("run", {"op": "echo", "value": 7}).result()
    assert value["value"] == 7 and value["pid"] != os.getpid() and seconds >= 0.0

    with pytest.raises(InvalidImage) as typed:
        test_helper.submit("run", {"op": "raise_typed"}).result()
    assert typed.value.detail == {"width": 0, "height": 0}
    with pytest.raises(OddInitError):
        test_helper.submit("run", {"op": "raise_odd"}).result()
    with pytest.raises(ProcessingFailed, match="LocalOnlyError"):
        test_helper.submit("run", {"op": "raise_unknown"}).result()
    with pytest.raises(KeyError):
        test_helper.submit("no such job", {})


def test_large_messages_both_ways_at_once_do_not_deadlock(test_helper: StageHelper) -> None:
    """A big reply is on its way while a big request goes out (the mold's STLs while the
    preview's texture is sent): each side must keep reading."""

    def exchange() -> tuple[int, int]:
        blob = test_helper.submit("run", {"op": "blob", "size": 16 << 20})
        time.sleep(0.5)  # the helper is now blocked sending 16 MiB nobody reads yet
        sized = test_helper.submit("run", {"op": "size_of", "data": b"x" * (16 << 20)})
        return len(blob.result()[0]["glb"]), sized.result()[0]

    assert _within(60, exchange) == (16 << 20, 16 << 20)


def test_a_request_sent_in_the_background_does_not_hold_up_the_caller(
    test_helper: StageHelper,
) -> None:
    """While the helper is busy (here: sending a 16 MiB reply nobody reads yet; at start:
    loading its modules) a large request waits in ``send``; from a thread, the caller
    returns at once and gets the same reply later."""
    blob = test_helper.submit("run", {"op": "blob", "size": 16 << 20})
    time.sleep(0.5)
    started = time.perf_counter()
    sending = test_helper.submit_in_background("run", {"op": "size_of", "data": b"x" * (16 << 20)})
    assert time.perf_counter() - started < 0.2
    assert len(_within(60, blob.result)[0]["glb"]) == 16 << 20
    assert _within(60, sending.result)[0] == 16 << 20


def test_an_unread_reply_does_not_answer_the_next_request(test_helper: StageHelper) -> None:
    test_helper.submit("run", {"op": "echo", "value": "abandoned"})  # never read
    value, _ = test_helper.submit("run", {"op": "echo", "value": "wanted"}).result()
    assert value["value"] == "wanted"


def test_replies_reach_their_callers_in_any_order() -> None:
    """Each job has its own thread in the helper, so a later request may answer first."""
    spec = HelperSpec(
        "two",
        jobs={
            "slow": HelperJob("tests.workers_jobs:helper_job"),
            "fast": HelperJob("tests.workers_jobs:helper_job"),
        },
    )
    helper = StageHelper(spec)
    try:
        slow = helper.submit("slow", {"op": "sleep", "seconds": 1.0})
        fast = helper.submit("fast", {"op": "echo", "value": "fast"})
        assert _within(30, slow.result)[0]["slept"] == 1.0  # reads fast's reply first
        assert _within(30, fast.result)[0]["value"] == "fast"
    finally:
        helper.close()


def test_a_helper_that_is_gone_only_moves_the_work_back(test_helper: StageHelper) -> None:
    pid = test_helper.submit("run", {"op": "echo"}).result()[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    # sent to a dead helper, or its reply lost: run here, same function
    value, _ = test_helper.submit("run", {"op": "echo", "value": 1}).result()
    assert value == {"pid": os.getpid(), "value": 1}
    value, _ = test_helper.submit("run", {"op": "echo", "value": 2}).result()
    assert value == {"pid": os.getpid(), "value": 2}


def test_closing_ends_the_helper_even_mid_job(test_helper: StageHelper) -> None:
    pid = test_helper.submit("run", {"op": "echo"}).result()[0]["pid"]
    test_helper.submit("run", {"op": "sleep", "seconds": 60})
    started = time.perf_counter()
    test_helper.close()
    assert time.perf_counter() - started < 5.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _run(image: bytes, helper: StageHelper | None, **options: object) -> dict[str, bytes]:
    result = run_pipeline(
        image,
        PipelineOptions(**options),
        ClassicStylizer(),
        ClassicReconstructor(),
        Settings(),
        helper=helper,
    )
    assert result.report.mold.gate_passed
    return result.artifacts


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [{"seed": 3}, {"mode": "solid", "color": "#3366CC"}], ids=["multicolor", "solid"]
)
def test_mold_and_preview_from_the_helper_are_the_same_bytes(options: dict[str, Any]) -> None:
    image = SAMPLE.read_bytes()
    helper = start_helper(Settings())
    try:
        with_helper = _run(image, helper, **options)
        assert helper.spec == STAGE_HELPER
    finally:
        helper.close()
    in_process = _run(image, None, **options)
    for name in ARTIFACT_NAMES:
        assert with_helper[name] == in_process[name], name


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_pool_worker_with_a_spare_core_uses_a_helper_in_its_process_group() -> None:
    """``stage_helpers=on`` (what ``auto`` picks for one worker on 2 cores): the worker
    process starts the helper, in the worker's process group (the pool's kill of a timed-out
    worker takes it too); the order's artifacts are the in-process bytes; closing the pool
    leaves no helper behind."""
    import psutil

    from sculptsvc.jobs import OrderJob, init_worker, run_order_job
    from sculptsvc.workers import WorkerPool

    image = SAMPLE.read_bytes()
    settings = Settings(stage_helpers="on")
    pool = WorkerPool(run_order_job, partial(init_worker, settings.model_dump_json()), workers=1)
    async with pool:
        output = await pool.submit(OrderJob("helped", 1, PipelineOptions(seed=3), image))
        helpers = [
            p
            for p in psutil.Process().children(recursive=True)
            if "sculptsvc.workers.helper" in " ".join(p.cmdline()) and p.ppid() != os.getpid()
        ]
        assert len(helpers) == 1, helpers
        worker = helpers[0].parent()
        assert worker is not None and worker.ppid() == os.getpid()
        assert os.getpgid(helpers[0].pid) == os.getpgid(worker.pid) == worker.pid
    in_process = _run(image, None, seed=3)
    for name in ARTIFACT_NAMES:
        assert output.artifacts[name] == in_process[name], name
    helpers[0].wait(timeout=10)  # raises psutil.TimeoutExpired if the helper outlived the pool


@pytest.mark.slow
def test_sculpt_mesh_makes_the_uv_atlas_in_a_helper_and_writes_the_same_glb(
    tmp_path: Path,
) -> None:
    """``sculpt mesh`` (multicolor) starts a helper that makes the UV atlas while the
    command checks the mesh and writes the report: the GLB is the in-process bytes, and the
    command waited for the helper's atlas instead of making its own."""
    import json
    import subprocess
    import sys

    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=20.0)
    sphere.visual.vertex_colors = (sphere.vertices[:, [0, 1, 2]] * 6 + 128).clip(0, 255)
    source = tmp_path / "sphere.ply"
    sphere.export(source)
    summaries = {}
    for helpers in ("on", "off"):
        out = subprocess.run(
            [sys.executable, "-m", "sculptsvc.cli", "mesh", str(source), "--json",
             "-o", str(tmp_path / f"{helpers}.glb")],
            env={**os.environ, "SCULPT_STAGE_HELPERS": helpers},
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip
        summaries[helpers] = json.loads(out)
    assert (tmp_path / "on.glb").read_bytes() == (tmp_path / "off.glb").read_bytes()
    assert "uv_wait" in summaries["on"]["timings_s"]
    assert "uv_wait" not in summaries["off"]["timings_s"]
