"""Header-only validation of ``.safetensors`` files: catches truncated copies in milliseconds.

A safetensors file is an 8-byte little-endian header length, a JSON header giving every
tensor's dtype, shape and byte range, then the data. A copy cut short (an interrupted rsync,
a full disk) still opens lazily and fails only when the missing tensor is first read, i.e.
at an order; comparing the header's byte ranges with the file size finds it at start-up.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

from sculptsvc.errors import ModelUnavailable

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""The format's own limit on the header size."""
MAX_LISTED = 5
"""How many missing/unexpected keys an error message names before it counts the rest."""


def read_header(path: Path) -> dict[str, dict[str, object]]:
    """The tensor entries of a safetensors header (``__metadata__`` dropped)."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 0 < length <= MAX_HEADER_BYTES:
                raise ValueError(f"implausible header length {length}")
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise ModelUnavailable(f"{path} is not a readable safetensors file: {exc}") from exc
    header.pop("__metadata__", None)
    return header


def check_safetensors(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes of a complete file; ``ModelUnavailable`` if it is cut short."""
    header = read_header(path)
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    data_bytes = path.stat().st_size - 8 - length
    end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)  # type: ignore[index]
    if end != data_bytes:
        raise ModelUnavailable(
            f"{path} is truncated or padded: header describes {end} data bytes, "
            f"file has {data_bytes}",
            path=str(path),
        )
    return {name: list(entry["shape"]) for name, entry in header.items()}  # type: ignore[call-overload]


def compare_tensor_shapes(
    expected: Mapping[str, list[int]],
    found: Mapping[str, list[int]],
    source: Path,
    what: str,
    against: Path,
) -> None:
    """Raise ``ModelUnavailable`` naming missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k} {found[k]} != {expected[k]}"
        for k in expected
        if k in found and list(found[k]) != list(expected[k])
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
        if keys:
            more = f" (+{len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
            problems.append(f"{label}: {', '.join(keys[:MAX_LISTED])}{more}")
    if problems:
        raise ModelUnavailable(
            f"{what} do not match {against}: " + "; ".join(problems),
            path=str(source),
            missing=len(missing),
            unexpected=len(unexpected),
            mismatched=len(wrong),
        )
