"""AI backends: the diffusion stylizer and the TripoSR and TripoSG reconstructors.

Importing this package costs nothing: torch, diffusers and transformers are imported only by
the modules that need them (``diffusion``, ``triposr``, ``triposg``), which ``backends`` loads when
the settings pick an AI backend. Weights are never downloaded: every model loads from a local
folder that the operator provides (see ``docs/models.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def manifest_cli(argv: list[str], module: str, write: Callable[[], None], path: Path) -> int:
    """``python -m sculptsvc.ai.<model> manifest``: regenerate a committed parameter manifest."""
    if argv != ["manifest"]:
        print(f"usage: python -m {module} manifest", file=sys.stderr)
        return 2
    write()
    print(f"wrote {path}")
    return 0
