"""Input limits: event validation messages, image size caps, URI allow-lists, SSRF guard."""

from __future__ import annotations

import base64
import http.server
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sculptsvc.errors import (
    ImageTooLarge,
    ImageUnavailable,
    InvalidEvent,
    InvalidImage,
    UriNotAllowed,
)
from sculptsvc.events import InlineImage, UriImage
from sculptsvc.service.intake import order_id_hint, parse_order, resolve_image
from sculptsvc.settings import Settings


def test_parse_order_names_the_bad_fields() -> None:
    with pytest.raises(InvalidEvent, match=r"image: Field required"):
        parse_order(b'{"order_id": "o1"}')
    with pytest.raises(InvalidEvent, match="empty"):
        parse_order(b"")


def test_an_order_framed_by_a_schema_registry_serializer_is_read() -> None:
    """Confluent's JSON Schema serializer writes a magic byte 0 and a 4-byte schema id
    before the JSON; the order inside is read and validated like a plain one."""
    plain = b'{"order_id": "o-9", "image": {"kind": "uri", "uri": "https://cdn.example/a.png"}}'
    framed = b"\x00" + (1234).to_bytes(4, "big") + plain
    order = parse_order(framed)
    assert (order.order_id, str(order.image.uri)) == ("o-9", "https://cdn.example/a.png")
    assert order_id_hint(b"\x00\x00\x00\x04\xd2" + b'{"order_id": "o-10"}', None) == "o-10"
    with pytest.raises(InvalidEvent, match="image: Field required"):
        parse_order(b"\x00\x00\x00\x04\xd2" + b'{"order_id": "o1"}')
    with pytest.raises(InvalidEvent):  # the framing alone is no order
        parse_order(b"\x00\x00\x00\x04\xd2")


@pytest.mark.parametrize(
    ("value", "key", "expected"),
    [
        (b'{"order_id": "o-7", "x": 1}', None, "o-7"),
        (b"garbage", b"o-8", "o-8"),
        (b'{"order_id": "../../etc"}', b"../x", None),
        (b"garbage", None, None),
    ],
)
def test_order_id_hint_only_returns_safe_ids(value, key, expected) -> None:
    assert order_id_hint(value, key) == expected


def test_inline_image_byte_cap() -> None:
    image = InlineImage(media_type="image/png", data_base64=base64.b64encode(b"x" * 2000).decode())
    with pytest.raises(ImageTooLarge):
        resolve_image(image, Settings(max_image_bytes=1000))
    assert resolve_image(image, Settings()) == b"x" * 2000


def test_file_uris_only_inside_allowed_roots(tmp_path: Path) -> None:
    inside = tmp_path / "in" / "a.png"
    inside.parent.mkdir()
    inside.write_bytes(b"png")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    settings = Settings(allowed_file_roots=[tmp_path / "in"])
    assert resolve_image(UriImage(uri=inside.as_uri()), settings) == b"png"
    with pytest.raises(UriNotAllowed):
        resolve_image(UriImage(uri=outside.as_uri()), settings)
    with pytest.raises(UriNotAllowed):  # no traversal out of the root
        resolve_image(UriImage(uri=f"file://{tmp_path}/in/../secret.png"), settings)
    with pytest.raises(InvalidImage):
        resolve_image(UriImage(uri=(tmp_path / "in" / "missing.png").as_uri()), settings)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/a.png",  # scheme not allowed
        "https://not-allowed.example/a.png",  # host not allowed
        "ftp://example.com/a.png",
    ],
)
def test_uris_outside_the_allow_list_are_refused(uri: str) -> None:
    with pytest.raises(UriNotAllowed):
        resolve_image(UriImage(uri=uri), Settings(allowed_uri_hosts=["cdn.example"]))


def test_allowed_host_resolving_to_loopback_is_refused() -> None:
    settings = Settings(allowed_uri_hosts=["localhost"])
    with pytest.raises(UriNotAllowed, match="internal address"):
        resolve_image(UriImage(uri="https://localhost/a.png"), settings)


class _Shop(http.server.BaseHTTPRequestHandler):
    """A shop's image server: one picture, a missing one, a busy one, a slow one, and
    redirects (to itself, to a host that is not allowed, to an internal address)."""

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes = {
            "/to-ok": f"http://localhost:{port}/ok.png",
            "/to-internal": f"http://127.0.0.1:{port}/ok.png",
            "/to-elsewhere": "http://elsewhere.example/ok.png",
        }
        if self.path == "/ok.png":
            self._answer(200, b"\x89PNG picture")
        elif self.path in routes:
            self.send_response(302)
            self.send_header("Location", routes[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/busy":
            self._answer(503, b"try later")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._answer(200, b"too late")
        else:
            self._answer(404, b"no such picture")

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # /slow: the client gave up first, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shop_server() -> Iterator[int]:
    """The shop's image server on loopback; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shop(shop_server: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Settings]:
    """The shop's server, where "127.0.0.1" stands for an internal address (the real check
    refuses every loopback address, "localhost" included)."""
    from sculptsvc.service import intake

    def refuse_only_the_numeric_loopback(host: str) -> str:
        if host == "127.0.0.1":
            raise UriNotAllowed(f"{host} resolves to internal address {host}")
        return "127.0.0.1"

    monkeypatch.setattr(intake, "_refuse_internal_addresses", refuse_only_the_numeric_loopback)
    settings = Settings(
        allowed_uri_schemes=["http"],
        allowed_uri_hosts=["localhost", "127.0.0.1", "elsewhere.example"],
        image_fetch_timeout_s=0.3,
    )
    return f"http://localhost:{shop_server}", settings


def test_the_connection_goes_to_the_address_checked_not_to_a_second_lookup(
    shop_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers a public address when it is checked and the loopback
    address (the shop server here, standing for an internal one) when it is looked up again
    to connect. The fetch must go to the checked address (unreachable from here), never
    read the picture from loopback."""
    import socket

    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])  # public: passes the check

    def rebinding(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(urllib.request, "getproxies", dict)
    settings = Settings(
        allowed_uri_schemes=["http"],
        allowed_uri_hosts=["rebind.example"],
        image_fetch_timeout_s=0.3,
    )
    uri = f"http://rebind.example:{shop_server}/ok.png"
    with pytest.raises((ImageUnavailable, UriNotAllowed)):
        resolve_image(UriImage(uri=uri), settings)


def test_an_image_uri_is_fetched_and_a_redirect_is_checked_like_the_uri(
    shop: tuple[str, Settings],
) -> None:
    base, settings = shop
    assert resolve_image(UriImage(uri=f"{base}/ok.png"), settings) == b"\x89PNG picture"
    assert resolve_image(UriImage(uri=f"{base}/to-ok"), settings) == b"\x89PNG picture"
    with pytest.raises(UriNotAllowed, match=r"redirects to http://127\.0\.0\.1.*internal address"):
        resolve_image(UriImage(uri=f"{base}/to-internal"), settings)
    narrower = settings.model_copy(update={"allowed_uri_hosts": ["localhost"]})
    with pytest.raises(UriNotAllowed, match=r"redirects to .*'elsewhere\.example' is not in"):
        resolve_image(UriImage(uri=f"{base}/to-elsewhere"), narrower)


def test_a_missing_image_is_rejected_and_a_busy_or_slow_server_is_retried(
    shop: tuple[str, Settings],
) -> None:
    """404: the order points at nothing (rejected). 503 or no answer in time: the shop's
    server, not the order, so the order is retried (``retryable``) and not rejected."""
    base, settings = shop
    with pytest.raises(InvalidImage, match="answered HTTP 404") as missing:
        resolve_image(UriImage(uri=f"{base}/gone.png"), settings)
    assert not missing.value.retryable
    with pytest.raises(ImageUnavailable, match="answered HTTP 503") as busy:
        resolve_image(UriImage(uri=f"{base}/busy"), settings)
    assert busy.value.retryable and busy.value.detail == {"status": 503}
    with pytest.raises(ImageUnavailable, match="timed out") as slow:
        resolve_image(UriImage(uri=f"{base}/slow"), settings)
    assert slow.value.retryable
