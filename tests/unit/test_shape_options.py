"""An order's shape options (relief depth, thickness, smoothing) and parting direction reach
the stages that build them, and a backend that cannot build them rejects the order."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from sculptsvc.errors import InvalidEvent
from sculptsvc.events import OrderPlaced
from sculptsvc.pipeline import PipelineOptions, options_from_order, shaped_reconstructor
from sculptsvc.reconstruct.classic import ClassicReconstructor, InflateParams, height_fields
from sculptsvc.settings import Settings


def order(**fields: object) -> OrderPlaced:
    image = {
        "kind": "inline",
        "media_type": "image/png",
        "data_base64": base64.b64encode(b"png").decode(),
    }
    return OrderPlaced.model_validate({"order_id": "o-1", "image": image, **fields})


def test_omitted_shape_gives_the_options_every_order_had() -> None:
    settings = Settings()
    options = options_from_order(order(), settings)
    assert (options.relief_depth, options.thickness, options.smoothing) == (1.0, 1.0, None)
    assert options.parting == "auto"


def test_shape_and_parting_reach_the_pipeline_options() -> None:
    options = options_from_order(
        order(shape={"relief_depth": 0, "thickness": 2, "smoothing": 0}, mold={"parting": "x"}),
        Settings(),
    )
    assert (options.relief_depth, options.thickness, options.smoothing) == (0.0, 2.0, 0)
    assert options.parting == "x"


@pytest.mark.parametrize(
    "shape", [{"relief_depth": 5}, {"thickness": 0.1}, {"smoothing": -1}, {"depth": 1}]
)
def test_out_of_bounds_shape_is_refused(shape: dict) -> None:
    with pytest.raises(ValueError):
        order(shape=shape)


class NoShapeBackend:
    name = "fixed"

    def reconstruct(self, image, *, seed):  # type: ignore[no-untyped-def]
        raise AssertionError("not reached")


def test_a_backend_without_shape_control_rejects_instead_of_ignoring() -> None:
    backend = NoShapeBackend()
    assert shaped_reconstructor(backend, PipelineOptions()) is backend  # defaults: fine
    with pytest.raises(InvalidEvent, match="relief_depth"):
        shaped_reconstructor(backend, PipelineOptions(thickness=1.5))


def test_classic_thickness_scales_the_heights() -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    mask = ((yy - 60) / 45.0) ** 2 + ((xx - 80) / 65.0) ** 2 < 1
    texture = np.full((*mask.shape, 3), 128, dtype=np.uint8)
    flat = InflateParams(relief_amplitude=0.0, smooth_cells=0.0)
    base = ClassicReconstructor(flat)
    thick = shaped_reconstructor(base, PipelineOptions(thickness=1.7))
    assert isinstance(thick, ClassicReconstructor)
    front, _ = height_fields(mask, texture, cell=2.0, params=base.params)
    front_t, _ = height_fields(mask, texture, cell=2.0, params=thick.params)
    inside = front > 0
    ratio = front_t[inside] / front[inside]
    assert ratio.mean() == pytest.approx(1.7, rel=0.01)
    np.testing.assert_allclose(ratio, 1.7, rtol=0.05)  # the floor's blend band by the outline


def test_classic_relief_depth_multiplies_the_relief() -> None:
    base = ClassicReconstructor()
    deep = base.reshaped(relief_depth=2.5, thickness=1.0)
    assert deep.params.relief_amplitude == pytest.approx(2.5 * base.params.relief_amplitude)
    assert deep.params.depth_scale == base.params.depth_scale
