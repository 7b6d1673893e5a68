"""The cyclic collector is paused only while a process loads its modules: a one-shot
command and a worker turn it back on (with what was loaded frozen), a process that never
paused it (a test runner calling the same functions) is left as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(code: str, cwd: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_paused_while_loading_then_on_with_the_loaded_objects_frozen(tmp_path: Path) -> None:
    state = run_python(
        """
        import gc, json
        from sculptsvc.loading import modules_loaded, pause_collection

        pause_collection()
        paused = not gc.isenabled()
        import trimesh  # noqa: F401  (many objects, made while paused)
        modules_loaded()
        frozen = gc.get_freeze_count()
        # collection works again: a cycle made now is freed by the next pass
        cycle = []
        cycle.append(cycle)
        del cycle
        print(json.dumps({"paused": paused, "enabled": gc.isenabled(), "frozen": frozen,
                          "collected": gc.collect()}))
        """,
        tmp_path,
    )
    assert state["paused"] is True
    assert state["enabled"] is True
    assert isinstance(state["frozen"], int) and state["frozen"] > 50_000
    assert isinstance(state["collected"], int) and state["collected"] >= 1


def test_a_process_that_never_paused_is_left_as_it_was(tmp_path: Path) -> None:
    state = run_python(
        """
        import gc, json
        from sculptsvc.loading import modules_loaded, pause_collection

        modules_loaded()                 # no pause before it: nothing happens
        untouched = gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()                     # the caller's own choice ...
        pause_collection()
        modules_loaded()                 # ... is not overridden
        print(json.dumps({"untouched": untouched, "still_off": not gc.isenabled(),
                          "frozen": gc.get_freeze_count()}))
        """,
        tmp_path,
    )
    assert state == {"untouched": True, "still_off": True, "frozen": 0}


def test_sculpt_mesh_runs_its_work_with_collection_on(tmp_path: Path) -> None:
    """The one-shot command pauses collection at start and resumes it before its work."""
    state = run_python(
        """
        import gc, json, sys
        import sculptsvc.mesh.pipeline as stage

        seen = {}
        real = stage.process_mesh

        def spy(*args, **kwargs):
            seen["enabled"] = gc.isenabled()
            seen["frozen"] = gc.get_freeze_count()
            return real(*args, **kwargs)

        stage.process_mesh = spy
        import sculptsvc.mesh
        sculptsvc.mesh.process_mesh = spy
        import trimesh
        trimesh.creation.icosphere(subdivisions=3).export("ball.stl")
        sys.argv = ["sculpt", "mesh", "ball.stl", "--out", "ball.glb", "--faces", "500"]
        from sculptsvc.cli import app
        from sculptsvc.loading import pause_collection
        pause_collection()               # as cli.main does for a one-shot command
        try:
            app()
        except SystemExit:
            pass
        print(json.dumps(seen))
        """,
        tmp_path,
    )
    assert state["enabled"] is True
    assert isinstance(state["frozen"], int) and state["frozen"] > 0
