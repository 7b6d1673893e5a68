"""Operations surface of a running `sculpt serve`: probes, Prometheus metrics, JSON logs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_service_faults import exactly_once, fault_settings, produce_orders
from tests.kafka_harness import KafkaHarness
from tests.service_support import ServiceProcess


def test_probes_metrics_and_order_logs(kafka: KafkaHarness, topics, tmp_path: Path) -> None:
    settings = fault_settings(kafka, topics, tmp_path)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        service.wait_ready()
        assert service.http_get("/health")[0] == 200
        status, body = service.http_get("/ready")
        assert (status, json.loads(body)) == (200, {"ready": True})
        produce_orders(kafka, topics.orders, ["ops-1"])
        exactly_once(kafka, topics, ["ops-1"], timeout=60)
        kafka.kcat_produce(topics.orders, "ops-bad", b"{not json")
        kafka.kcat_consume(topics.dlq, 1, 30)
        status, metrics = service.http_get("/metrics")
        text = metrics.decode()
        assert status == 200
        assert 'sculpt_orders_total{outcome="completed"} 1.0' in text
        assert 'sculpt_dead_letters_total{code="invalid_event"} 1.0' in text
        assert 'sculpt_stage_duration_seconds_count{stage="mesh"} 1.0' in text
        assert 'sculpt_pool{key="alive"} 1.0' in text
        assert "faststream_received_messages_total" in text
    finally:
        service.terminate()
    events = [
        json.loads(line)
        for line in service.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    order_events = [e for e in events if e.get("event", "").startswith("order.")]
    assert {e["event"] for e in order_events} >= {
        "order.accepted",
        "order.completed",
        "order.invalid",
    }
    assert all("order_id" in e for e in order_events)
    assert any(e["event"] == "job_done" and e.get("order_id") == "ops-1" for e in events)
