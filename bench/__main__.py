"""Run every benchmark module (``bench/bench_*.py``, each with a ``main()``) in turn; those
with ``ONLY_WHEN_NAMED = True`` (the GPU benchmark) run only when named, e.g. ``bench gpu``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main() -> int:
    selected = sys.argv[1:]
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        name = path.stem
        if selected and name.removeprefix("bench_") not in selected:
            continue
        module = importlib.import_module(f"bench.{name}")
        if not selected and getattr(module, "ONLY_WHEN_NAMED", False):
            continue
        module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
