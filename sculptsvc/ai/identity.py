"""What a replay must match: a fingerprint of a model folder and the parameters used with it.

QA replays must give byte-identical artifacts, which needs the same weights and knobs. Hashing
gigabytes of weights at every start would cost seconds, so the fingerprint covers the folder's
file list with sizes plus the full text of its small config files (JSON/YAML/TXT) and the
parameters: it changes whenever an operator swaps, re-exports or re-configures a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_SUFFIXES = {".json", ".yaml", ".yml", ".txt"}
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Config-like files larger than this (e.g. big vocabularies) count by size only."""


def folder_fingerprint(folder: Path, params: Mapping[str, Any] | None = None) -> str:
    """sha256 hex over (relative path, size[, config text]) of every file, then the params."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue  # caches and lock files of hub tooling
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if path.suffix in CONFIG_SUFFIXES and size <= MAX_CONFIG_BYTES:
            digest.update(path.read_bytes())
    digest.update(json.dumps(dict(params or {}), sort_keys=True, default=str).encode())
    return digest.hexdigest()
