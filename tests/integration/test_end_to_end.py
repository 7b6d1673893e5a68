"""The product end to end: kcat publishes a real picture, the service runs the real CPU
pipeline on its worker pool, kcat reads the outcome, the factory fetches and verifies the
artifacts, and `sculpt reproduce` re-runs the order to the same sha256 values."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh

from sculptsvc.store import LocalArtifactStore
from tests.integration.test_replay_kafka import cli_env
from tests.integration.test_service_kafka import service_settings
from tests.kafka_harness import KafkaHarness
from tests.service_support import running_service

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def test_picture_in_mold_out_and_reproducible(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = service_settings(kafka, topics, tmp_path, workers=1, job_timeout_s=300)
    image = (REPO_ROOT / "samples" / "sample.png").read_bytes()
    order = {
        "order_id": "e2e-duck",
        "correlation_id": "cart-1",
        "image": {
            "kind": "inline",
            "media_type": "image/png",
            "data_base64": base64.b64encode(image).decode(),
        },
        "mode": "solid",
        "color": "#F2C500",
        "size_mm": 60,
        "seed": 7,
    }
    async with running_service(settings, runner=None):
        await asyncio.to_thread(
            kafka.kcat_produce, topics.orders, "e2e-duck", json.dumps(order), {"source": "shop"}
        )
        # kcat reads until the terminal status, which comes in one transaction with the rest
        statuses: list = []
        for _ in range(60):
            statuses = await asyncio.to_thread(
                kafka.kcat_consume, topics.status, 10, 5, stop_at_end=True
            )
            states = [json.loads(s["payload"])["state"] for s in statuses]
            if {"completed", "failed", "rejected"} & set(states):
                break
        assert states[-1] == "completed", states
        assert await asyncio.to_thread(kafka.kcat_consume, topics.dlq, 1, 3, stop_at_end=True) == []
        models = await asyncio.to_thread(kafka.kcat_consume, topics.models, 1, 30)
        molds = await asyncio.to_thread(kafka.kcat_consume, topics.molds, 1, 30)
    model = json.loads(models[0]["payload"])
    mold = json.loads(molds[0]["payload"])
    store = LocalArtifactStore(settings.artifact_root)
    glb = store.get(model["glb"]["uri"])
    assert hashlib.sha256(glb).hexdigest() == model["glb"]["sha256"]
    assert 19_600 <= model["triangles"] <= 20_400 and model["watertight"]
    for half in ("half_a", "half_b"):
        stl = store.get(mold[half]["uri"])
        assert hashlib.sha256(stl).hexdigest() == mold[half]["sha256"]
        mesh = trimesh.load(trimesh.util.wrap_as_stream(stl), file_type="stl")
        assert mesh.is_watertight and mesh.bounds[0][2] == pytest.approx(0.0, abs=1e-3)
    assert mold["cavity_volume_ml"] > 1.0

    # as QA runs it: its own process (in a thread of this one, the native libraries that
    # first load in that thread corrupt the heap when the process exits)
    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("sculpt")), "reproduce", "e2e-duck", "--json"],
        env={
            **os.environ,
            **cli_env(settings),
            "SCULPT_ARTIFACT_ROOT": str(tmp_path / "reproduce"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["identical"] is True
    assert {row["artifact"] for row in report["artifacts"]} == {
        "model.glb",
        "preview.png",
        "mold_a.stl",
        "mold_b.stl",
        "mold.3mf",
    }
