"""Writes (or checks) ``schemas/*.json`` from the event models: the models are the source."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sculptsvc.events import ALL_EVENTS, SCHEMA_VERSION, schema_of

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def rendered_schemas() -> dict[str, str]:
    return {
        f"{model.event_type}.v{SCHEMA_VERSION}.json": json.dumps(
            schema_of(model), indent=2, sort_keys=True
        )
        + "\n"
        for model in ALL_EVENTS
    }


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    problems = []
    for name, text in rendered_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            problems.append(name)
    return problems


if __name__ == "__main__":
    if sys.argv[1:] == ["write"]:
        for p in write():
            print(p)
    else:
        bad = drift()
        print("\n".join(bad) or "schemas up to date")
        raise SystemExit(1 if bad else 0)
