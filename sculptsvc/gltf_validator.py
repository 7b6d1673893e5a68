"""Runs the Khronos glTF validator (npm ``gltf-validator``, via ``tools/validate-gltf.mjs``).

The validator is the reference the web viewers and the factory trust, so tests and the
``sculpt mesh --validate`` path run the real one rather than a Python imitation. It needs
Node.js and ``npm install`` in ``tools/`` (``scripts/bootstrap`` does both).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"
SCRIPT = TOOLS_DIR / "validate-gltf.mjs"
_TIMEOUT_S = 120.0


class ValidatorUnavailable(RuntimeError):
    """Node.js or the npm package is missing: a set-up problem, not a bad GLB."""


class GltfMessage(BaseModel):
    code: str
    message: str
    severity: int = Field(description="0 error, 1 warning, 2 info, 3 hint.")
    pointer: str | None = None
    offset: int | None = None


class GltfReport(BaseModel):
    """The parts of the validator's report that callers act on (``raw`` has all of it)."""

    num_errors: int
    num_warnings: int
    num_infos: int
    num_hints: int
    messages: list[GltfMessage]
    validator_version: str
    raw: dict[str, Any] = Field(repr=False)

    @property
    def ok(self) -> bool:
        """No errors and no warnings: what every GLB we publish must meet."""
        return self.num_errors == 0 and self.num_warnings == 0


def validator_available() -> bool:
    return (
        shutil.which(os.environ.get("SCULPT_NODE", "node")) is not None
        and (TOOLS_DIR / "node_modules" / "gltf-validator").is_dir()
    )


def _parse(raw: dict[str, Any]) -> GltfReport:
    issues = raw["issues"]
    return GltfReport(
        num_errors=issues["numErrors"],
        num_warnings=issues["numWarnings"],
        num_infos=issues["numInfos"],
        num_hints=issues["numHints"],
        messages=[GltfMessage(**m) for m in issues["messages"]],
        validator_version=raw.get("validatorVersion", ""),
        raw=raw,
    )


def validate_glb(data: bytes, *, max_issues: int = 0) -> GltfReport:
    """Validate GLB (or glTF JSON) bytes; raises ``ValidatorUnavailable`` without Node."""
    if not validator_available():
        raise ValidatorUnavailable(
            f"glTF validator not installed: need `node` and `npm install` in {TOOLS_DIR}"
        )
    node = os.environ.get("SCULPT_NODE", "node")
    proc = subprocess.run(
        [node, str(SCRIPT), "--max-issues", str(max_issues), "-"],
        input=data,
        capture_output=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise ValidatorUnavailable(
            f"validator exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}"
        )
    return _parse(json.loads(proc.stdout.decode().splitlines()[0]))


def validate_file(path: Path, *, max_issues: int = 0) -> GltfReport:
    return validate_glb(Path(path).read_bytes(), max_issues=max_issues)
