"""The GPU benchmark's rows run (reduced sizes, one repeat) and report real numbers."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("torch")

from bench import bench_gpu

pytestmark = pytest.mark.ai


def test_reduced_plan_rows_time_the_real_reconstructor_code() -> None:
    plan = dataclasses.replace(bench_gpu.make_plan(), dtypes=("float32",), batches=(1,), repeats=1)
    if plan.full:
        pytest.skip("a GPU is present: the benchmark itself runs full size")
    rows: list[dict[str, object]] = []
    bench_gpu.triposr_rows(plan, rows)
    bench_gpu.triposg_rows(plan, rows)
    assert [r["setting"] for r in rows] == [
        "forward 64px",
        "forward + extraction 64^3 (grid, MC, colours)",
        "DINOv2 56px",
        "1 flow step, CFG, 64 tokens",
        "sample: 4 steps, CFG 7",
        "SDF 8->32^3 + MC",
    ]
    for row in rows:
        assert isinstance(row["warm_median_s"], float) and row["warm_median_s"] > 0, row
    assert rows[1]["target_s"] == 0.3
