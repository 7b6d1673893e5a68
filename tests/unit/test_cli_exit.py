"""A one-shot command ends without interpreter teardown, but with everything teardown does
that anyone outside the process can see: threads joined, atexit handlers run, output
flushed, the command's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sculptsvc.commands._exit import exit_code


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exit_now_joins_threads_runs_atexit_and_flushes(tmp_path: Path) -> None:
    proc = run_python(
        """
        import atexit, pathlib, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        from sculptsvc.commands._exit import exit_now

        def late_write():
            time.sleep(0.3)
            pathlib.Path("thread.txt").write_text("joined")

        threading.Thread(target=late_write).start()          # non-daemon: joined
        pool = ThreadPoolExecutor(1)                          # idle worker: told to stop
        pool.submit(lambda: None).result()
        atexit.register(lambda: pathlib.Path("atexit.txt").write_text("ran"))
        sys.stdout.write("buffered, never flushed by hand")  # a pipe: block-buffered
        exit_now(3)
        """,
        tmp_path,
    )
    assert proc.returncode == 3
    assert proc.stdout == "buffered, never flushed by hand"
    assert (tmp_path / "thread.txt").read_text() == "joined"
    assert (tmp_path / "atexit.txt").read_text() == "ran"


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), ("bad", 1)])
def test_exit_code_is_what_system_exit_gives(code: object, status: int) -> None:
    assert exit_code(code) == status


def test_sculpt_mold_ends_fast_with_its_files_and_exit_codes(tmp_path: Path) -> None:
    """The real executable path (``sculptsvc.cli.main``): a mold that is complete on disk,
    and a rejected input still exits 2 with its typed error on stderr. ``-o`` is ``--out``,
    as for ``sculpt make`` and ``sculpt mesh``."""
    import trimesh

    box = tmp_path / "box.stl"
    trimesh.creation.box(extents=(30.0, 40.0, 50.0)).export(box)
    done = subprocess.run(
        [sys.executable, "-m", "sculptsvc.cli", "mold", str(box), "-o", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for half in ("mold_a.stl", "mold_b.stl"):
        mesh = trimesh.load(tmp_path / "m" / half)
        assert mesh.is_watertight and mesh.volume > 0

    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    refused = subprocess.run(
        [sys.executable, "-m", "sculptsvc.cli", "mold", str(flat), "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert '"error"' in refused.stderr


OPENBLAS_THREADS = """
import ctypes, json
import sculptsvc.cli  # what `sculpt` imports first
import numpy, scipy.linalg  # every OpenBLAS the stages load
GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
           "openblas_get_num_threads64_", "openblas_get_num_threads")
counts = []
for path in sorted({line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line}):
    lib = ctypes.CDLL(path)
    counts += [getattr(lib, name)() for name in GETTERS if hasattr(lib, name)][:1]
print(json.dumps(counts))
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(("preset", "expected"), [(None, 1), ("2", 2)])
def test_sculpt_runs_openblas_on_one_thread_unless_told(
    tmp_path: Path, preset: str | None, expected: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    proc = subprocess.run(
        [sys.executable, "-c", OPENBLAS_THREADS], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    assert counts and all(count == expected for count in counts), counts
