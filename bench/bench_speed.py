"""Speed before/after (issue #16): every figure next to the one from before, same run.

"before" is the commit before the speed work (``BASELINE_REF``, or ``SCULPT_BENCH_BASELINE``
naming another commit), extracted with ``git archive`` and run on this venv with no
bytecode for the venv's modules (the state a fresh bootstrap left then: each process
compiled what it imported; ``PYTHONDONTWRITEBYTECODE=1`` as in containers). "after" is this
tree with the bytecode that ``scripts/bootstrap`` now compiles. Runs alternate before/after
so drift on a shared machine hits both alike; every process is cold unless said.

Tables:
 1. ``sculpt make`` per stage, median over the corpus pictures: wall, CPU, peak memory
    (``bench/_probe.py`` wraps the pipeline's stage timer; ``startup`` = interpreter,
    imports, settings and backends). Since the stage helper (``sculptsvc/workers/helper``)
    the mold and the preview run in a second process: this one shows only the time it
    waited for them (``mold_wait``, ``preview_wait``); their CPU is in table 2's figures.
 2. end to end, whole processes (``os.wait4``: CPU includes waited-for children such as
    the Node validator; peak is the largest single process): ``sculpt --help``, ``sculpt
    make`` median and worst over the pictures, ``sculpt mold`` on a 20k-triangle GLB,
    ``sculpt mesh`` on the 70k-triangle bunny, and a warm worker's seconds per order
    (a ``sculpt serve`` worker of the tree measured, after a warm-up order, classic
    backends: its ``init_worker``, so with a stage helper where it has a core to spare).

The service's own overhead per order (Kafka, store, events) is ``bench_workers`` (pool
round trip) plus ``bench_service`` (real broker); this module does not start a broker.

    .venv/bin/python -m bench speed          # SCULPT_BENCH_REPEATS=N runs per figure (3)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO_ROOT, corpus_dir, print_table

BASELINE_REF = "ab4e9abaeffb8ee7f1478ca6e8c3492c307d05c9"  # main before issue #16
TARGETS_S = {
    "sculpt make median": 3.0,
    "sculpt make worst": 5.0,
    "sculpt mold 20k GLB": 1.0,
    "sculpt mesh bunny": 1.5,
    "warm worker per order": 2.0,
}
PROBE = Path(__file__).resolve().parent / "_probe.py"
# The ``sculpt`` console script, for either tree: its entry point was ``app`` before #16
# and is ``main`` now (one-shot commands end without interpreter teardown).
SCULPT = (
    sys.executable,
    "-c",
    "import sys, sculptsvc.cli as cli; sys.argv[0] = 'sculpt'; "
    "sys.exit(getattr(cli, 'main', cli.app)())",
)
STAGE_ORDER = (
    "startup",
    "decode",
    "stylize",
    "reconstruct",
    "place",
    "mesh",
    "glb",
    "preview",
    "validate",
    "mold",
    "mold_wait",
    "preview_wait",
)


def checkout_baseline(ref: str, into: Path) -> Path:
    """The packages and Node script of ``ref`` under ``into`` (uses this tree's node_modules)."""
    root = into / "baseline"
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "sculptsvc", "mold", "tools"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    modules = REPO_ROOT / "tools" / "node_modules"
    if modules.is_dir():
        (root / "tools" / "node_modules").symlink_to(modules)
    return root


def stdlib_only_cache(into: Path) -> Path:
    """A pycache prefix holding bytecode for the standard library only (as Python ships)."""
    prefix = into / "pycache-stdlib-only"
    stdlib = Path(os.__file__).parent
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "-x", "test", str(stdlib)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return prefix


def variants(tmp: Path, ref: str) -> dict[str, dict[str, str]]:
    base = checkout_baseline(ref, tmp)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONPYCACHEPREFIX")}
    return {
        "before": {
            **clean,
            "PYTHONPATH": str(base),
            "PYTHONPYCACHEPREFIX": str(stdlib_only_cache(tmp)),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        "after": {**clean, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
    }


def run_cold(argv: Sequence[str], env: dict[str, str]) -> dict[str, float]:
    """Wall, CPU (user + sys, with waited-for children) and peak RSS of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} exited {proc.returncode}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def compare(
    label: str, runs: dict[str, list[dict[str, float]]], target: float | None, worst: bool = False
) -> dict[str, object]:
    pick = max if worst else statistics.median
    b = {k: pick(r[k] for r in runs["before"]) for k in ("wall_s", "cpu_s", "peak_mib")}
    a = {k: pick(r[k] for r in runs["after"]) for k in ("wall_s", "cpu_s", "peak_mib")}
    return {
        "figure": label,
        "n": len(runs["after"]),
        "wall_before": b["wall_s"],
        "wall_after": a["wall_s"],
        "wall_x": b["wall_s"] / a["wall_s"],
        "cpu_before": b["cpu_s"],
        "cpu_after": a["cpu_s"],
        "cpu_x": b["cpu_s"] / a["cpu_s"],
        "peak_mib_before": round(b["peak_mib"], 1),
        "peak_mib_after": round(a["peak_mib"], 1),
        "target_s": f"<{target}" if target else "",
        "met": "" if target is None else ("yes" if a["wall_s"] < target else "NO"),
    }


def main() -> None:
    images = sorted((corpus_dir() / "images").glob("*.png"))
    if not images:
        print_table("speed before/after (no corpus found)", [])
        return
    repeats = int(os.environ.get("SCULPT_BENCH_REPEATS", "3"))
    ref = os.environ.get("SCULPT_BENCH_BASELINE", BASELINE_REF)
    with tempfile.TemporaryDirectory(prefix="sculpt-speed-") as tmp_name:
        tmp = Path(tmp_name)
        envs = variants(tmp, ref)
        rows = []
        both = ("before", "after")

        help_runs: dict[str, list[dict[str, float]]] = {v: [] for v in both}
        for _ in range(repeats):
            for v in both:
                help_runs[v].append(run_cold([*SCULPT, "--help"], envs[v]))
        rows.append(compare("sculpt --help", help_runs, None))

        # 1 + 2: every picture once per variant, cold, through the stage probe
        make_runs: dict[str, list[dict[str, float]]] = {v: [] for v in both}
        stages: dict[str, dict[str, list[dict[str, float]]]] = {v: {} for v in both}
        for image in images:
            for v in both:
                out, result = tmp / v / image.stem, tmp / v / f"{image.stem}.json"
                argv = [sys.executable, str(PROBE), "make", str(image), str(out), str(result)]
                make_runs[v].append(run_cold(argv, envs[v]))
                for name, figures in json.loads(result.read_text())["stages"].items():
                    stages[v].setdefault(name, []).append(figures)
        rows.append(compare("sculpt make median", make_runs, TARGETS_S["sculpt make median"]))
        rows.append(
            compare("sculpt make worst", make_runs, TARGETS_S["sculpt make worst"], worst=True)
        )

        glb = tmp / "after" / images[0].stem / "model.glb"  # a 20k-triangle sculpture
        mold_runs: dict[str, list[dict[str, float]]] = {v: [] for v in both}
        mesh_runs: dict[str, list[dict[str, float]]] = {v: [] for v in both}
        bunny = corpus_dir() / "meshes" / "stanford-bunny.obj"
        for _ in range(repeats):
            for v in both:
                mold = [*SCULPT, "mold", str(glb), "--out", str(tmp / v / "mold")]
                mold_runs[v].append(run_cold(mold, envs[v]))
                if bunny.is_file():
                    mesh = [*SCULPT, "mesh", str(bunny), "--out", str(tmp / v / "bunny.glb")]
                    mesh_runs[v].append(run_cold(mesh, envs[v]))
        rows.append(compare("sculpt mold 20k GLB", mold_runs, TARGETS_S["sculpt mold 20k GLB"]))
        if mesh_runs["after"]:
            rows.append(compare("sculpt mesh bunny", mesh_runs, TARGETS_S["sculpt mesh bunny"]))

        warm: dict[str, list[dict[str, float]]] = {}
        for v in both:
            result = tmp / v / "warm.json"
            argv = [sys.executable, str(PROBE), "warm", str(result), *map(str, images)]
            subprocess.run(
                argv, env=envs[v], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            warm[v] = [{**o, "peak_mib": 0.0} for o in json.loads(result.read_text())["orders"]]
        rows.append(compare("warm worker per order", warm, TARGETS_S["warm worker per order"]))

    stage_rows = []
    for name in [s for s in STAGE_ORDER if s in stages["after"]]:
        b, a = stages["before"].get(name, []), stages["after"][name]
        stage_rows.append(
            {
                "stage": name,
                "wall_before": _median(b, "wall_s") if b else float("nan"),
                "wall_after": _median(a, "wall_s"),
                "cpu_before": _median(b, "cpu_s") if b else float("nan"),
                "cpu_after": _median(a, "cpu_s"),
                "peak_mib_before": round(_median(b, "peak_mib"), 1) if b else float("nan"),
                "peak_mib_after": round(_median(a, "peak_mib"), 1),
            }
        )
    load = os.getloadavg()[0]
    print_table(
        f"sculpt make per stage, median over {len(images)} corpus pictures, seconds / MiB "
        f"(before = {ref[:10]}; load average {load:.1f} on {os.cpu_count()} CPUs)",
        stage_rows,
    )
    print_table(
        f"end to end, cold processes unless said; {repeats} runs per figure, pictures once "
        f"each; median unless 'worst' (load average {load:.1f})",
        rows,
    )


if __name__ == "__main__":
    main()
