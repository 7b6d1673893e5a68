"""HTTP probes shared by `sculpt serve` and `sculpt station` (FastStream's ASGI routes)."""

from __future__ import annotations

import json
from typing import Any

from faststream.asgi import AsgiResponse, get

JSON = {"content-type": "application/json"}


@get(include_in_schema=False)
async def health(scope: Any) -> AsgiResponse:
    """Liveness: the process serves HTTP."""
    return AsgiResponse(b'{"status":"ok"}', 200, headers=JSON)


def ready_response(reasons: list[str], **extra: object) -> AsgiResponse:
    """200 ``{"ready": true}`` when nothing is wrong, else 503 with every reason."""
    body: dict[str, object] = {"ready": not reasons}
    if reasons:
        body["reasons"] = reasons
    body.update(extra)
    return AsgiResponse(json.dumps(body).encode(), 503 if reasons else 200, headers=JSON)
