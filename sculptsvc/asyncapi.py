"""Writes (or checks) ``docs/asyncapi.json``: FastStream's AsyncAPI 3.0 document of the app.

The order consumer takes raw bytes (so bad JSON can be dead-lettered byte for byte), which
FastStream would document as "binary"; the document is patched to name OrderPlaced instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sculptsvc.events import OrderPlaced
from sculptsvc.settings import Settings

ASYNCAPI_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"


def render() -> str:
    from sculptsvc.service.app import create_app

    settings = Settings()
    app = create_app(settings, runner=object())  # type: ignore[arg-type]  # never started
    doc = app.schema.to_specification().to_jsonable()
    schemas = doc["components"]["schemas"]
    order_schema = OrderPlaced.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(order_schema.pop("$defs", {}))
    schemas["OrderPlaced"] = order_schema
    for name, message in doc["components"]["messages"].items():
        if name.startswith(f"{settings.topic_orders}:"):
            message["payload"] = {"$ref": "#/components/schemas/OrderPlaced"}
    for name in [n for n in schemas if n.startswith(f"{settings.topic_orders}:")]:
        del schemas[name]
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = render()
    if sys.argv[1:] == ["write"]:
        ASYNCAPI_PATH.write_text(text)
        print(ASYNCAPI_PATH)
    else:
        same = ASYNCAPI_PATH.exists() and ASYNCAPI_PATH.read_text() == text
        print("asyncapi up to date" if same else "docs/asyncapi.json is stale")
        raise SystemExit(0 if same else 1)
