"""No cyclic garbage collection while a process loads its modules.

Loading the stages (trimesh, scipy, pymeshlab, pydantic, ...) creates several hundred
thousand container objects and almost no garbage; CPython's collector still runs on every
700 new ones, and each full pass walks everything loaded so far. Paused while the modules
load, then resumed with what exists moved out of its reach (``gc.freeze``: it is all
module-level state that lives as long as the process), a one-shot command saves about 0.1 s
of a 2 s ``sculpt mesh`` and a worker's later full passes skip those objects. The price:
the few cycles that loading leaves as garbage (about 1,500 objects of 190,000 after the
mesh stage's imports) are frozen too and never freed; collecting them first would take a
full pass, 0.1 s, the whole saving.
"""

from __future__ import annotations

import gc

_paused = False


def pause_collection() -> None:
    """Stop the cyclic collector until :func:`modules_loaded` (no-op if it is already off:
    the caller turned it off and will turn it on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def modules_loaded() -> None:
    """Freeze what exists and resume collection, only if :func:`pause_collection` paused
    it (a test runner's process stays as it was)."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()
