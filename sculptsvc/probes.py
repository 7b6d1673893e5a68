"""HTTP probes shared by `sculpt serve` and `sculpt station` (FastStream's ASGI routes)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from faststream.asgi import AsgiResponse, get

JSON = {"content-type": "application/json"}
READY_PING_TIMEOUT_S = 2.0
"""How long /ready waits for the broker to answer."""


@get(include_in_schema=False)
async def health(scope: Any) -> AsgiResponse:
    """Liveness: the process serves HTTP."""
    return AsgiResponse(b'{"status":"ok"}', HTTPStatus.OK, headers=JSON)


def ready_response(reasons: list[str], **extra: object) -> AsgiResponse:
    """200 ``{"ready": true}`` when nothing is wrong, else 503 with every reason."""
    body: dict[str, object] = {"ready": not reasons}
    if reasons:
        body["reasons"] = reasons
    body.update(extra)
    status = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
    return AsgiResponse(json.dumps(body).encode(), status, headers=JSON)
