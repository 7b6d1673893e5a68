"""Runs the Khronos glTF validator (npm ``gltf-validator``, via ``tools/validate-gltf.mjs``).

The validator is the reference the web viewers and the factory trust, so tests and the
``sculpt mesh --validate`` path run the real one rather than a Python imitation. It needs
Node.js and ``npm install`` in ``tools/`` (``scripts/bootstrap`` does both).

One Node process per Python process serves every validation (``validate-gltf.mjs
--serve``): starting Node and loading the validator costs more than validating a 20k
triangle GLB, and a worker validates one GLB per order. :func:`prestart` launches it early
so that Node boots while the mesh stage computes. A process that died is replaced once per
call; a forked child never shares its parent's process.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import subprocess
import threading
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


class _Server:
    """The long-lived ``validate-gltf.mjs --serve`` process of this Python process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the Python process that started ``_proc``

    def _alive(self) -> subprocess.Popen[bytes] | None:
        proc = self._proc
        if proc is None or self._pid != os.getpid() or proc.poll() is not None:
            return None
        return proc

    def _start(self) -> subprocess.Popen[bytes]:
        proc = self._alive()
        if proc is not None:
            return proc
        if self._proc is not None and self._pid == os.getpid():
            self._stop()
        node = os.environ.get("SCULPT_NODE", "node")
        self._proc = subprocess.Popen(
            [node, str(SCRIPT), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._pid = os.getpid()
        return self._proc

    def start(self) -> None:
        with self._lock:
            self._start()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._stop()

    def request(self, data: bytes, max_issues: int) -> dict[str, Any]:
        frame = struct.pack("<II", max_issues, len(data)) + data
        with self._lock:
            for attempt in (1, 2):
                proc = self._start()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(frame)
                    proc.stdin.flush()
                    line = _readline(proc, _TIMEOUT_S)
                except (OSError, TimeoutError) as exc:
                    self._stop()
                    if attempt == 2:
                        raise ValidatorUnavailable(f"validator process failed: {exc}") from exc
                    continue
                if line:
                    answer: dict[str, Any] = json.loads(line)
                    return answer
                self._stop()  # died mid-request: one fresh process, then give up
        raise ValidatorUnavailable("validator process exited without answering")


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line from the server, or ``TimeoutError`` (then the process is stopped)."""
    result: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join()
        raise TimeoutError(f"no answer in {timeout:.0f} s")
    return result[0]


_SERVER = _Server()
atexit.register(_SERVER.stop)


def prestart() -> None:
    """Start the validator process now (returns at once) so that it is ready when needed."""
    if validator_available():
        _SERVER.start()


def validate_glb(data: bytes, *, max_issues: int = 0) -> GltfReport:
    """Validate GLB (or glTF JSON) bytes; raises ``ValidatorUnavailable`` without Node."""
    if not validator_available():
        raise ValidatorUnavailable(
            f"glTF validator not installed: need `node` and `npm install` in {TOOLS_DIR}"
        )
    raw = _SERVER.request(data, max_issues)
    if "error" in raw:
        raise ValidatorUnavailable(f"validator: {raw['error']}")
    return _parse(raw)


def validate_file(path: Path, *, max_issues: int = 0) -> GltfReport:
    return validate_glb(Path(path).read_bytes(), max_issues=max_issues)
