"""Writes (or checks) the AsyncAPI 3.0 documents FastStream makes of the two applications:
``docs/asyncapi.json`` (the service) and ``docs/asyncapi-station.json`` (`sculpt station`).

Both consumers take raw bytes (so a bad event can be dead-lettered or failed byte for byte),
which FastStream would document as "binary"; the documents are patched to name the event.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sculptsvc.events import Event, MoldReady, OrderPlaced
from sculptsvc.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
ASYNCAPI_PATH = DOCS / "asyncapi.json"
STATION_ASYNCAPI_PATH = DOCS / "asyncapi-station.json"


def _patched(app: Any, topic: str, model: type[Event]) -> str:
    """The app's document, with ``topic``'s raw-bytes payload replaced by ``model``."""
    doc = app.schema.to_specification().to_jsonable()
    schemas = doc["components"]["schemas"]
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    for name, message in doc["components"]["messages"].items():
        if name.startswith(f"{topic}:"):
            message["payload"] = {"$ref": f"#/components/schemas/{model.__name__}"}
    for name in [n for n in schemas if n.startswith(f"{topic}:")]:
        del schemas[name]
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render() -> str:
    from sculptsvc.service.app import create_app

    settings = Settings()
    app = create_app(settings, runner=object())  # type: ignore[arg-type]  # never started
    return _patched(app, settings.topic_orders, OrderPlaced)


def render_station() -> str:
    from sculptsvc.station.app import create_station_app

    settings = Settings(station_id="station")
    return _patched(create_station_app(settings), settings.topic_molds, MoldReady)


if __name__ == "__main__":
    stale = []
    for path, text in ((ASYNCAPI_PATH, render()), (STATION_ASYNCAPI_PATH, render_station())):
        if sys.argv[1:] == ["write"]:
            path.write_text(text)
            print(path)
        elif not (path.exists() and path.read_text() == text):
            stale.append(path.name)
    print(f"stale: {', '.join(stale)}" if stale else "asyncapi up to date")
    raise SystemExit(1 if stale else 0)
