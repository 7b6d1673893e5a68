"""Helpers shared by the benchmark modules: corpus location and a plain-text table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    return Path(os.environ.get("SCULPT_CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus"))


def print_table(title: str, rows: Sequence[dict[str, object]]) -> str:
    """Print rows (dicts with the same keys) as an aligned table and return the text."""
    if not rows:
        text = f"{title}\n(no rows)\n"
        print(text)
        return text
    headers = list(rows[0].keys())

    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [[fmt(row.get(h, "")) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    text = "\n".join(lines) + "\n"
    print(text)
    return text
