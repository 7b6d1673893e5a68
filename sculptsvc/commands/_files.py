"""How every file-producing command writes its outputs."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name so no half-written file is ever seen under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
