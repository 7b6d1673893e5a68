"""How long the test broker takes: fetch, cold start (with and without the AppCDS archive),
clean and crash restarts, stop. Run with ``python -m bench kafka``; one pass, no loops.

Target (on the 2-core CI machine): a broker start under 15 s; with the archive, ~2-3 s.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO_ROOT, print_table

SCRIPT = REPO_ROOT / "scripts" / "kafka"


@dataclass(frozen=True)
class BenchParams:
    start_target_s: float = 15.0
    command_timeout_s: float = 300.0


def timed(*args: str, env: dict[str, str] | None = None, params: BenchParams) -> float:
    """Seconds one ``scripts/kafka`` call takes; raises if it fails."""
    t0 = time.perf_counter()
    subprocess.run(
        [str(SCRIPT), *args],
        check=True,
        capture_output=True,
        timeout=params.command_timeout_s,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - t0


def broker_cpu_s(workdir: Path) -> float:
    """CPU seconds (user + system) the broker JVM in ``workdir`` has used so far."""
    pid = (workdir / "kafka.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(params: BenchParams | None = None) -> None:
    params = params or BenchParams()
    rows: list[dict[str, object]] = []

    def row(step: str, seconds: float, note: str = "", cpu_of: Path | None = None) -> None:
        cpu = f"{broker_cpu_s(cpu_of):.2f}" if cpu_of else ""
        rows.append({"step": step, "seconds": round(seconds, 2), "broker_cpu_s": cpu, "note": note})

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        root = Path(tmp)
        fresh_lib = {"KAFKA_LIB": str(root / "lib")}
        row(
            "fetch (jars cached in ~/.m2)",
            timed("fetch", env=fresh_lib, params=params),
            "mvn copy-dependencies into an empty lib/",
        )
        row("fetch (already done)", timed("fetch", env=fresh_lib, params=params), "no-op")
        timed("fetch", params=params)  # the repo's own lib/, used below

        no_cds = {"KAFKA_CDS": "0"}
        cold = timed("start", str(root / "a"), env=no_cds, params=params)
        row("cold start, no CDS archive", cold, "format + JVM + ready", root / "a")
        row("clean stop", timed("stop", str(root / "a"), env=no_cds, params=params), "SIGTERM")
        row(
            "restart, no CDS archive",
            timed("start", str(root / "a"), env=no_cds, params=params),
            "same DIR and ports",
            root / "a",
        )
        timed("stop", str(root / "a"), params=params)

        # Make sure the shared archive exists (the first clean stop of a broker records it).
        timed("start", str(root / "warm"), params=params)
        timed("stop", str(root / "warm"), params=params)
        cold_cds = timed("start", str(root / "b"), params=params)
        row("cold start, CDS archive", cold_cds, "format + JVM + ready", root / "b")
        timed("stop", str(root / "b"), params=params)
        row(
            "restart (SIGTERM), CDS",
            timed("start", str(root / "b"), params=params),
            "same DIR and ports",
            root / "b",
        )
        timed("kill", str(root / "b"), params=params)
        row(
            "restart after kill -9, CDS",
            timed("start", str(root / "b"), params=params),
            "waits for the old broker session (4 s)",
            root / "b",
        )
        timed("stop", str(root / "b"), params=params)

    print_table("Kafka test broker (scripts/kafka)", rows)
    verdict = "meets" if max(cold, cold_cds) < params.start_target_s else "MISSES"
    print(f"cold start {verdict} the {params.start_target_s:.0f} s target\n")


if __name__ == "__main__":
    main()
