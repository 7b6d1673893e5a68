"""Prometheus metrics of the order pipeline (FastStream's middleware adds the broker's own)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.stage_seconds = Histogram(
            "sculpt_stage_duration_seconds",
            "Time per pipeline stage",
            ["stage"],
            registry=r,
            buckets=STAGE_BUCKETS,
        )
        self.order_seconds = Histogram(
            "sculpt_order_duration_seconds",
            "Order receipt to terminal event",
            ["outcome"],
            registry=r,
            buckets=STAGE_BUCKETS,
        )
        self.in_flight = Gauge("sculpt_orders_in_flight", "Orders being processed", registry=r)
        self.orders = Counter(
            "sculpt_orders_total", "Orders by terminal outcome", ["outcome"], registry=r
        )
        self.retries = Counter(
            "sculpt_retries_total", "Transient failures retried", ["code"], registry=r
        )
        self.dead_letters = Counter(
            "sculpt_dead_letters_total",
            "Messages sent to the dead-letter topic",
            ["code"],
            registry=r,
        )
        self.duplicates = Counter(
            "sculpt_duplicate_orders_total",
            "Order revisions seen again and not re-run",
            registry=r,
        )
        self.pool = Gauge(
            "sculpt_pool",
            "Worker pool state (alive, busy, queued, crashes, timeouts, ...)",
            ["key"],
            registry=r,
        )
        self.redeliveries = Counter(
            "sculpt_redelivered_results_total",
            "Stored results re-published after a crash between job and commit",
            registry=r,
        )

    def observe_pool(self, stats: dict[str, object]) -> None:
        for key, value in stats.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.pool.labels(key).set(value)
