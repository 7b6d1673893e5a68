"""The single sources of issue 11: error disposition, the mold-error mapping, the order
bounds (owned by ``mold``), the artifact table, and the size applied exactly once."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mold import InvalidSpec, MoldGateFailed, MoldSpec, PartNotManifold, make_mold, shapes
from mold import files as mold_files
from mold.spec import SIZE_MM_MAX, SIZE_MM_MIN, WALL_MM_MAX, WALL_MM_MIN
from sculptsvc import artifacts, errors
from sculptsvc.events import InlineImage, ModelReady, MoldReady, OrderPlaced
from sculptsvc.options import PipelineOptions

IMAGE = InlineImage(media_type="image/png", data_base64="AAAA")


@pytest.mark.parametrize(
    ("error", "attempt", "action"),
    [
        (errors.NoSubject("x"), 1, errors.Action.reject),
        (errors.MoldFailed("x"), 1, errors.Action.fail),
        (ZeroDivisionError("bug"), 1, errors.Action.fail),
        (errors.JobTimeout("x"), 1, errors.Action.retry),
        (errors.JobTimeout("x"), 3, errors.Action.fail),
        (errors.WorkerCrashed("x", attempts=1), 1, errors.Action.fail),  # the pool retried
        (errors.PoolClosed("x"), 1, errors.Action.redeliver),
        (errors.PublishFailed("x"), 1, errors.Action.redeliver),
        (errors.ModelUnavailable("x"), 1, errors.Action.configuration),
    ],
)
def test_one_disposition_per_error(error: BaseException, attempt: int, action) -> None:
    assert errors.disposition(error, attempt=attempt, max_attempts=3) is action


def test_the_pool_retries_crashes_until_its_attempts_are_spent() -> None:
    crash = errors.WorkerCrashed("x")
    assert errors.disposition(crash, attempt=2, max_attempts=3, in_pool=True) is errors.Action.retry
    assert errors.disposition(crash, attempt=3, max_attempts=3, in_pool=True) is errors.Action.fail


def test_publish_failed_is_in_the_error_tree() -> None:
    assert issubclass(errors.PublishFailed, errors.TransientError)


def test_one_mold_error_mapping() -> None:
    assert isinstance(errors.from_mold_error(InvalidSpec("sprue")), errors.InvalidEvent)
    unusable = errors.from_mold_error(PartNotManifold("open"))
    assert isinstance(unusable, errors.UnrepairableMesh)
    assert unusable.detail["mold_code"] == "part_not_manifold"
    assert isinstance(errors.from_mold_error(MoldGateFailed("min_wall", "thin")), errors.MoldFailed)


@pytest.mark.parametrize(
    ("size_mm", "wall_mm"),
    [(SIZE_MM_MIN, WALL_MM_MIN), (SIZE_MM_MAX, WALL_MM_MAX)],
)
def test_event_options_and_mold_accept_the_same_bounds(size_mm: float, wall_mm: float) -> None:
    order = OrderPlaced(order_id="o", image=IMAGE, size_mm=size_mm, mold={"wall_mm": wall_mm})
    PipelineOptions(size_mm=size_mm, wall_mm=wall_mm)
    MoldSpec(size_mm=size_mm, wall_mm=wall_mm)
    assert (order.size_mm, order.mold.wall_mm) == (size_mm, wall_mm)


@pytest.mark.parametrize(
    "build",
    [
        lambda s, w: OrderPlaced(order_id="o", image=IMAGE, size_mm=s, mold={"wall_mm": w}),
        lambda s, w: PipelineOptions(size_mm=s, wall_mm=w),
        lambda s, w: MoldSpec(size_mm=s, wall_mm=w),
    ],
)
@pytest.mark.parametrize(
    ("size_mm", "wall_mm"),
    [
        (SIZE_MM_MIN - 1, 4.0),
        (SIZE_MM_MAX + 1, 4.0),
        (80.0, WALL_MM_MIN / 2),
        (80.0, WALL_MM_MAX + 1),
    ],
)
def test_event_options_and_mold_refuse_the_same_values(build, size_mm, wall_mm) -> None:
    with pytest.raises(ValidationError):
        build(size_mm, wall_mm)


def test_artifact_table_covers_both_events_and_takes_the_mold_names() -> None:
    for event in (ModelReady, MoldReady):
        ref_fields = {
            name
            for name, field in event.model_fields.items()
            if "ArtifactRef" in str(field.annotation)
        }
        assert set(artifacts.refs_for(event.event_type, dict.fromkeys(artifacts.NAMES))) == (
            ref_fields
        )
    mold_names = {mold_files.HALF_A, mold_files.HALF_B, mold_files.THREE_MF}
    assert mold_names <= set(artifacts.NAMES)
    assert [a.name for a in artifacts.ARTIFACTS if not a.deterministic] == ["report.json"]


def test_a_part_already_in_millimetres_is_not_scaled_again() -> None:
    vertices, faces = shapes.sphere()
    vertices = np.asarray(vertices) * (57.0 / np.ptp(vertices, axis=0).max())
    report = make_mold(vertices, faces, MoldSpec(size_mm=None)).report
    assert report.part.scale_mm_per_unit == 1.0
