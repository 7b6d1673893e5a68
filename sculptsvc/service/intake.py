"""Turning raw Kafka bytes into a validated order and its image bytes, or a typed rejection."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from pydantic import TypeAdapter, ValidationError

from sculptsvc.errors import (
    ImageTooLarge,
    ImageUnavailable,
    InvalidEvent,
    InvalidImage,
    SculptError,
    UriNotAllowed,
)
from sculptsvc.events import InlineImage, OrderId, OrderPlaced, UriImage
from sculptsvc.settings import Settings

_ORDER_ID: TypeAdapter[str] = TypeAdapter(OrderId)


_REGISTRY_MAGIC = b"\x00"
_REGISTRY_HEADER_BYTES = 5  # magic byte, then the 4-byte big-endian schema id


def unframed(value: bytes) -> bytes:
    """The JSON of a record value, without the Schema Registry wire framing that Confluent's
    JSON Schema serializer puts in front of it (magic byte 0, a 4-byte schema id). JSON
    never starts with a NUL byte, so a framed value cannot be mistaken for a plain one.
    The schema id is not looked up: the order is validated against this service's v1
    schema, as every order is."""
    if value[:1] == _REGISTRY_MAGIC and len(value) > _REGISTRY_HEADER_BYTES:
        return value[_REGISTRY_HEADER_BYTES:]
    return value


def parse_order(value: bytes | None) -> OrderPlaced:
    """Validate an OrderPlaced (plain JSON, or framed by a Schema Registry serializer);
    the error message names every bad field."""
    if not value:
        raise InvalidEvent("empty message value")
    try:
        return OrderPlaced.model_validate_json(unframed(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise InvalidEvent(f"not a valid OrderPlaced v1: {problems}") from None


def order_id_hint(value: bytes | None, key: bytes | None) -> str | None:
    """Best-effort order id of an event that failed validation (for its rejected status)."""
    candidates: list[object] = []
    try:
        doc = json.loads(unframed(value or b""))
        if isinstance(doc, dict):
            candidates.append(doc.get("order_id"))
    except ValueError:
        pass
    if key:
        candidates.append(key.decode("utf-8", "replace"))
    for cand in candidates:
        try:
            return _ORDER_ID.validate_python(cand)
        except ValidationError:
            continue
    return None


def resolve_image(image: InlineImage | UriImage, settings: Settings) -> bytes:
    """The image's bytes, within the byte limit, from an inline payload or an allowed URI."""
    if isinstance(image, InlineImage):
        data = image.decoded()
    else:
        data = _fetch(str(image.uri), settings)
    if len(data) > settings.max_image_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; the limit is {settings.max_image_bytes}")
    if not data:
        raise InvalidImage("image is empty (0 bytes)")
    return data


def _fetch(uri: str, settings: Settings) -> bytes:
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme not in settings.allowed_uri_schemes:
        raise UriNotAllowed(f"scheme {scheme!r} is not allowed ({settings.allowed_uri_schemes})")
    if scheme == "file":
        path = Path(unquote(parsed.path)).resolve()
        roots = [Path(r).resolve() for r in settings.allowed_file_roots]
        if not any(path.is_relative_to(root) for root in roots):
            raise UriNotAllowed(f"{path} is outside the allowed file roots")
        if not path.is_file():
            raise InvalidImage(f"{path} does not exist")
        if path.stat().st_size > settings.max_image_bytes:
            raise ImageTooLarge(f"{path} is larger than {settings.max_image_bytes} bytes")
        return path.read_bytes()
    _check_remote(uri, settings)
    opener = urllib.request.build_opener(_CheckedRedirects(settings), *_pinned_handlers(uri))
    request = urllib.request.Request(uri, headers={"User-Agent": "sculptsvc"})
    try:
        with opener.open(request, timeout=settings.image_fetch_timeout_s) as response:
            data = response.read(settings.max_image_bytes + 1)
    except urllib.error.HTTPError as exc:
        answer = f"fetching {uri} answered HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in _TRY_AGAIN_LATER:
            raise ImageUnavailable(answer, status=exc.code) from exc
        raise InvalidImage(answer, status=exc.code) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, SculptError):  # a redirect refused by _CheckedRedirects
            raise reason from None
        raise ImageUnavailable(f"fetching {uri} failed: {reason}") from exc
    if len(data) > settings.max_image_bytes:
        raise ImageTooLarge(f"{uri} is larger than {settings.max_image_bytes} bytes")
    return data


_TRY_AGAIN_LATER = {408, 425, 429}  # HTTP statuses that say "not now", not "never"


def _check_remote(uri: str, settings: Settings) -> None:
    """An http(s) URI on an allowed host that resolves to public addresses only. The
    address check is repeated where the connection is made (``_checked_socket``, the one
    that binds); this one names the URI or redirect that failed, and is the only one when
    an environment proxy connects."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme not in settings.allowed_uri_schemes or scheme not in ("http", "https"):
        raise UriNotAllowed(f"scheme {scheme!r} is not allowed ({settings.allowed_uri_schemes})")
    host = (parsed.hostname or "").lower()
    if host not in {h.lower() for h in settings.allowed_uri_hosts}:
        raise UriNotAllowed(f"host {host!r} is not in the allowed hosts")
    _refuse_internal_addresses(host)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to where the order itself could have pointed: an allowed
    scheme and host, resolving to public addresses (an allowed CDN redirecting to a
    cloud's metadata address, 169.254.169.254, is refused like a URI naming it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def redirect_request(  # type: ignore[no-untyped-def]
        self, req, fp, code, msg, headers, newurl
    ) -> urllib.request.Request | None:
        try:
            _check_remote(newurl, self.settings)
        except UriNotAllowed as exc:
            raise urllib.error.URLError(
                UriNotAllowed(f"{req.full_url} redirects to {newurl}: {exc.message}")
            ) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _refuse_internal_addresses(host: str) -> str:
    """An allowed name that resolves to a private or loopback address is refused (SSRF);
    returns the first of its (public) addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise InvalidImage(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved:
            raise UriNotAllowed(f"{host} resolves to internal address {addr}")
    return str(infos[0][4][0])


def _pinned_handlers(uri: str) -> list[urllib.request.BaseHandler]:
    """Handlers whose connections go to the address checked, resolved once at connect time:
    a second lookup could answer differently (DNS rebinding: public for the check, internal
    for the connection). Through an HTTP(S) proxy from the environment the proxy connects,
    and only the name was checked."""
    parsed = urlparse(uri)
    proxies = urllib.request.getproxies()
    if parsed.scheme in proxies and not urllib.request.proxy_bypass(parsed.hostname or ""):
        return []
    return [_PinnedHTTPHandler(), _PinnedHTTPSHandler()]


def _checked_socket(connection: http.client.HTTPConnection) -> socket.socket:
    """A socket to the address the internal-address check approved, from one lookup."""
    address = _refuse_internal_addresses(connection.host)
    return socket.create_connection(
        (address, connection.port), connection.timeout, connection.source_address
    )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _checked_socket(self)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        self.sock = self._context.wrap_socket(_checked_socket(self), server_hostname=self.host)


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PinnedHTTPConnection, req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PinnedHTTPSConnection, req)
