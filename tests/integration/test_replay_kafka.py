"""QA replay on the real broker: dead letters back as their original bytes; a replayed order
runs again even though its revision was already processed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from sculptsvc.cli import app
from tests.integration.test_service_kafka import service_settings, wait_for
from tests.kafka_harness import KafkaHarness
from tests.service_support import InstantRunner, order_json, read_topic, running_service


def cli_env(settings) -> dict[str, str]:
    return {
        "SCULPT_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SCULPT_TOPIC_ORDERS": settings.topic_orders,
        "SCULPT_TOPIC_DLQ": settings.topic_dlq,
        "SCULPT_TOPIC_QA": settings.topic_qa,
        "SCULPT_TOPIC_MODELS": settings.topic_models,
        "SCULPT_TOPIC_MOLDS": settings.topic_molds,
    }


async def test_replay_dead_letters_to_qa_and_orders_to_input(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    bad = b'{"order_id": "broken", "image": '
    async with running_service(settings, runner):
        await asyncio.to_thread(kafka.kcat_produce, topics.orders, "broken", bad, {"src": "shop"})
        await asyncio.to_thread(kafka.kcat_produce, topics.orders, "ord-r", order_json("ord-r"))
        await read_topic(kafka.bootstrap, topics.dlq, 1, timeout=60)
        await read_topic(kafka.bootstrap, topics.molds, 1, timeout=60)

        cli = CliRunner()
        result = await asyncio.to_thread(
            cli.invoke,
            app,
            ["replay", "--from", "dlq", "--to", "qa", "--json"],
            env=cli_env(settings),
        )
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.output)["records"]) == 1
        qa = await asyncio.to_thread(kafka.kcat_consume, topics.qa, 1, 30)
        assert qa[0]["payload"].encode() == bad
        assert qa[0]["key"] == "broken"
        assert qa[0]["headers"]["src"] == "shop"
        assert qa[0]["headers"]["sculpt-replay"] == "1"
        assert qa[0]["headers"]["replayed-from"] == f"{topics.orders}/0/0"

        result = await asyncio.to_thread(
            cli.invoke,
            app,
            ["replay", "--from", "orders", "--to", "input", "--order-id", "ord-r"],
            env=cli_env(settings),
        )
        assert result.exit_code == 0, result.output
        assert "re-published 1 record" in result.output

        async def ran_twice() -> bool:
            return runner.jobs.count(("ord-r", 1)) == 2

        await wait_for(ran_twice, timeout=60)
