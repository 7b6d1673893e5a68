"""How a one-shot command ends: its own clean-up, then no interpreter teardown.

After ``sculpt make``, ``mesh`` or ``mold`` has written its files, CPython's finalisation
still frees ~1,800 modules one object at a time and runs the destructors of every native
library loaded (OSMesa/LLVM, MeshLab's plugins, manifold3d's thread pool): about 0.25 s of
a ~1-3 s command, spent on memory the kernel reclaims anyway. :func:`exit_now` does what
finalisation does that matters to anyone outside the process, in the same order
(``Py_FinalizeEx``: join non-daemon threads and run threading's exit hooks, then the
``atexit`` handlers: the validator process is stopped, GL contexts freed, logging
flushed), flushes stdout/stderr, and ends the process with the command's exit code.

Only commands whose outputs are complete when they return use it: every file they write
goes through ``write_atomic`` (closed, then renamed), so no buffer is left for a
destructor to flush. Long-running commands (serve, station, studio) end normally.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

ONE_SHOT_COMMANDS = frozenset({"make", "demo", "mesh", "mold"})


def exit_code(code: object) -> int:
    """The status ``SystemExit(code)`` gives a process (None: 0; a message: 1, printed)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: int) -> NoReturn:
    """End the process as finalisation would, without freeing what the kernel frees."""
    threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nobody is reading any more
            code = code or 1
    os._exit(code)
