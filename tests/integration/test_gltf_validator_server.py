"""The long-lived Khronos validator process: same verdicts as one Node start per GLB."""

from __future__ import annotations

import json
import subprocess

import pytest
import trimesh

from sculptsvc import gltf_validator
from sculptsvc.gltf_validator import SCRIPT, ValidatorUnavailable, validate_glb

pytestmark = pytest.mark.skipif(
    not gltf_validator.validator_available(),
    reason="glTF validator not installed (scripts/bootstrap runs npm install in tools/)",
)


@pytest.fixture(scope="module")
def glb() -> bytes:
    return bytes(trimesh.creation.icosphere(subdivisions=2).export(file_type="glb"))


def _one_shot(data: bytes) -> dict:
    proc = subprocess.run(
        ["node", str(SCRIPT), "-"], input=data, capture_output=True, check=False, timeout=120
    )
    return json.loads(proc.stdout.decode().splitlines()[0])


def test_one_process_serves_many_and_agrees_with_a_fresh_node(glb: bytes) -> None:
    broken = glb[:-40]  # truncated buffer: the validator reports errors
    first = validate_glb(glb)
    pid = gltf_validator._SERVER._proc.pid  # type: ignore[union-attr]
    bad = validate_glb(broken)
    again = validate_glb(glb)
    assert gltf_validator._SERVER._proc.pid == pid  # type: ignore[union-attr]
    for report, data in ((first, glb), (bad, broken), (again, glb)):
        fresh = _one_shot(data)["issues"]
        assert (report.num_errors, report.num_warnings, report.num_infos, report.num_hints) == (
            fresh["numErrors"],
            fresh["numWarnings"],
            fresh["numInfos"],
            fresh["numHints"],
        )
        assert [m.code for m in report.messages] == [m["code"] for m in fresh["messages"]]
    assert bad.num_errors > 0 and first.num_errors == 0


def test_a_dead_process_is_replaced(glb: bytes) -> None:
    validate_glb(glb)
    proc = gltf_validator._SERVER._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    assert validate_glb(glb).num_errors == 0
    assert gltf_validator._SERVER._proc is not None
    assert gltf_validator._SERVER._proc.pid != proc.pid


def test_unreadable_input_is_a_typed_error_and_the_process_survives(glb: bytes) -> None:
    try:
        report = validate_glb(b"\x00" * 7)
    except ValidatorUnavailable:
        pass
    else:  # the validator may also answer with errors for bytes it cannot parse
        assert report.num_errors > 0
    assert validate_glb(glb).num_errors == 0
