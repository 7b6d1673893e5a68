"""Artifacts over HTTP, by content hash only: ``GET /artifacts/{sha256}``.

The route takes nothing but 64 lowercase hex digits; it serves only hashes the Studio knows
an ``ArtifactRef`` for (from the events it read or the designs it ran) and reads them
through the ``ArtifactStore`` (local or S3), which checks the bytes against the hash. So no
path, bucket key or other file is reachable. Content-addressed bytes never change: the
ETag is the sha256, responses are cacheable for good, ``If-None-Match`` gets a 304.

Range requests (RFC 9110 section 14): one ``bytes=`` range gets a 206 with
``Content-Range``; an unsatisfiable one a 416; several ranges, or a malformed header, get
the whole body (a server may ignore Range), which is all viewers need. Starlette's own
``FileResponse`` implements ranges for files on disk only; the store hands out bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.responses import Response

from sculptsvc.events import ArtifactRef

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CACHE_FOREVER = "public, max-age=31536000, immutable"

DOWNLOAD_NAMES = {
    "model/gltf-binary": "glb",
    "image/png": "png",
    "model/stl": "stl",
    "model/3mf": "3mf",
    "application/json": "json",
}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(ValueError):
    """The range starts past the end of the body (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of a ``Range`` header, or None to send the whole body."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None  # several ranges, another unit or garbage: whole body
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if start >= size:
        raise Unsatisfiable(header)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if end < start:
        return None
    return ByteRange(start, end)


def etag_of(sha256: str) -> str:
    return f'"{sha256}"'


def artifact_response(
    ref: ArtifactRef,
    data: bytes,
    *,
    range_header: str | None,
    if_none_match: str | None,
    download_name: str | None = None,
) -> Response:
    headers = {
        "ETag": etag_of(ref.sha256),
        "Accept-Ranges": "bytes",
        "Cache-Control": CACHE_FOREVER,
    }
    if download_name:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    if if_none_match and etag_of(ref.sha256) in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    try:
        wanted = parse_range(range_header, len(data))
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return Response(status_code=416, headers=headers)
    if wanted is None:
        return Response(data, media_type=ref.media_type, headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{len(data)}"
    body = data[wanted.start : wanted.end + 1]
    return Response(body, status_code=206, media_type=ref.media_type, headers=headers)


def download_name(ref: ArtifactRef) -> str:
    return f"{ref.sha256[:12]}.{DOWNLOAD_NAMES.get(ref.media_type, 'bin')}"
