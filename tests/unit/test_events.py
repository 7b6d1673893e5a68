"""Event contracts: validation rules, deterministic ids, schema files in sync."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from sculptsvc import schemas
from sculptsvc.events import (
    DeadLetter,
    ErrorInfo,
    OrderPlaced,
    OrderState,
    OrderStatus,
    deterministic_event_id,
)

PNG_1PX = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def order(**overrides: object) -> dict:
    data = {
        "order_id": "ord-1",
        "image": {"kind": "inline", "media_type": "image/png", "data_base64": PNG_1PX},
    }
    data.update(overrides)
    return data


def test_minimal_order_gets_defaults() -> None:
    placed = OrderPlaced.model_validate(order())
    assert placed.revision == 1
    assert placed.mode == "multicolor"
    assert placed.size_mm == 80.0
    assert placed.mold.wall_mm == 4.0
    assert placed.schema_version == 1
    assert placed.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"mode": "solid"}, "needs a color"),
        ({"mode": "solid", "color": "red"}, "pattern"),
        ({"order_id": "../etc/passwd"}, "pattern"),
        ({"order_id": ""}, "pattern"),
        ({"size_mm": 5}, "greater than or equal"),
        ({"image": {"kind": "inline", "media_type": "image/png", "data_base64": "!!"}}, "base64"),
        ({"image": {"kind": "uri", "uri": "not a uri"}}, "URL"),
        ({"unexpected": 1}, "Extra inputs"),
        ({"schema_version": 2}, "Input should be 1"),
    ],
)
def test_invalid_orders_are_refused_with_a_reason(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        OrderPlaced.model_validate(order(**overrides))
    assert fragment in str(info.value)


def test_status_error_only_for_unhappy_states() -> None:
    err = ErrorInfo(code="no_subject", message="nothing found")
    OrderStatus(order_id="o", state=OrderState.rejected, error=err)
    with pytest.raises(ValidationError):
        OrderStatus(order_id="o", state=OrderState.failed)
    with pytest.raises(ValidationError):
        OrderStatus(order_id="o", state=OrderState.completed, error=err)


def test_event_ids_and_seeds_are_deterministic() -> None:
    assert deterministic_event_id("o", 1, "completed") == deterministic_event_id(
        "o", 1, "completed"
    )
    assert deterministic_event_id("o", 1, "completed") != deterministic_event_id(
        "o", 2, "completed"
    )
    a = OrderPlaced.model_validate(order())
    b = OrderPlaced.model_validate(order())
    assert a.effective_seed() == b.effective_seed()
    assert a.event_id != b.event_id  # producer-chosen ids stay unique


def test_round_trip_through_json() -> None:
    placed = OrderPlaced.model_validate(order(mode="solid", color="#A1B2C3", seed=7))
    again = OrderPlaced.model_validate_json(placed.model_dump_json())
    assert again == placed


def test_dead_letter_accepts_unknown_order() -> None:
    dl = DeadLetter(
        original_topic="t",
        original_partition=0,
        original_offset=3,
        original_key_base64=None,
        original_value_base64="eA==",
        error_class="InvalidEvent",
        error_code="invalid_event",
        error_message="bad json",
    )
    assert dl.order_id is None


def test_schema_files_match_the_models() -> None:
    assert schemas.drift() == [], "run `make schemas` and commit schemas/"


def test_schemas_are_valid_json_schema_documents() -> None:
    for name, text in schemas.rendered_schemas().items():
        doc = json.loads(text)
        assert doc["type"] == "object", name
        assert {"event_id", "order_id", "occurred_at", "schema_version", "correlation_id"} <= set(
            doc["properties"]
        ), name


def test_asyncapi_document_is_current_and_names_every_topic() -> None:
    from sculptsvc import asyncapi

    text = asyncapi.render()
    assert asyncapi.ASYNCAPI_PATH.read_text() == text, "run `make schemas` and commit docs/"
    doc = json.loads(text)
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]) == {
        "sculpt.orders.v1",
        "sculpt.order-status.v1",
        "sculpt.models.v1",
        "sculpt.molds.v1",
        "sculpt.orders.dlq.v1",
    }
    order_messages = [m for n, m in doc["components"]["messages"].items() if "orders.v1" in n]
    assert order_messages[0]["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}


def test_every_error_code_an_order_can_end_with_is_documented() -> None:
    from pathlib import Path

    from sculptsvc import errors

    doc = (Path(__file__).resolve().parents[2] / "docs/contracts/status.md").read_text()
    never_on_orders = (  # start-up / shutdown; claim-check reads (stations: station-jobs.md)
        errors.ConfigurationError,
        errors.PoolClosed,
        errors.ArtifactMismatch,
        errors.ArtifactMissing,
    )
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.SculptError)
        and not issubclass(cls, never_on_orders)
        and cls not in (errors.SculptError, errors.RejectedInput, errors.TransientError)
    }
    missing = sorted(code for code in codes if f"`{code}`" not in doc)
    assert missing == []


def test_station_asyncapi_document_is_current() -> None:
    from sculptsvc import asyncapi

    text = asyncapi.render_station()
    assert asyncapi.STATION_ASYNCAPI_PATH.read_text() == text, "run `make schemas`"
    doc = json.loads(text)
    assert set(doc["channels"]) == {"sculpt.molds.v1", "sculpt.station-jobs.v1"}
    assert "StationJob" in doc["components"]["schemas"]
    molds = [m for n, m in doc["components"]["messages"].items() if "molds.v1" in n]
    assert molds[0]["payload"] == {"$ref": "#/components/schemas/MoldReady"}


# --- an outside client's view: the schema files, a standard validator ---------------------

_ORDER = {
    "event_id": "0b7f0000-0000-4000-8000-000000000001",
    "schema_version": 1,
    "order_id": "ord-2026-000123",
    "occurred_at": "2026-11-24T10:00:00Z",
    "correlation_id": "cart-991",
    "revision": 1,
    "image": {"kind": "inline", "media_type": "image/png", "data_base64": "iVBORw0KGgo="},
    "mode": "solid",
    "color": "#E4572E",
    "size_mm": 80,
    "mold": {"wall_mm": 4, "material": "pla"},
}
_BOX = {"left": 0.1, "top": 0.1, "right": 0.9, "bottom": 0.9}
_MASK = {"kind": "inline", "media_type": "image/png", "data_base64": "iVBORw0KGgo="}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"image": {"kind": "uri", "uri": "s3://bucket/key.png"}},
        {"subject_hint": {"box": _BOX}},
        {"subject_hint": {"mask": _MASK, "box": None}},
        {"color": "red"},
        {"size_mm": 0},
        {"seed": 2**32},
        {"unknown": 1},
        {"mold": {"wall_mm": 4, "unknown": 1}},
        {"image": {"kind": "inline", "media_type": "image/png", "data_base64": "!!!"}},
        {"subject_hint": {}},
        {"subject_hint": {"box": _BOX, "mask": _MASK}},
        {"subject_hint": {"box": None, "mask": None}},
        {"schema_version": 2},
    ],
)
def test_a_client_validating_against_the_schema_file_agrees_with_the_service(
    changes: dict,
) -> None:
    """A shop's system checks its orders against ``schemas/OrderPlaced.v1.json`` with a
    standard JSON Schema validator: what it accepts the service accepts, what the service
    refuses it refuses. Two rules JSON Schema cannot state are documented instead: a box's
    ``left < right`` (fields compared) and ``date-time`` (a format is only an annotation)."""
    from jsonschema import Draft202012Validator

    schema = json.loads((schemas.SCHEMA_DIR / "OrderPlaced.v1.json").read_text(encoding="utf-8"))
    order = {**_ORDER, **changes}
    schema_says = Draft202012Validator(schema).is_valid(order)
    try:
        OrderPlaced.model_validate_json(json.dumps(order))
        service_says = True
    except ValidationError:
        service_says = False
    assert schema_says == service_says
