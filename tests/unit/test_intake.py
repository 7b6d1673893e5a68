"""Input limits: event validation messages, image size caps, URI allow-lists, SSRF guard."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sculptsvc.errors import ImageTooLarge, InvalidEvent, InvalidImage, UriNotAllowed
from sculptsvc.events import InlineImage, UriImage
from sculptsvc.service.intake import order_id_hint, parse_order, resolve_image
from sculptsvc.settings import Settings


def test_parse_order_names_the_bad_fields() -> None:
    with pytest.raises(InvalidEvent, match=r"image: Field required"):
        parse_order(b'{"order_id": "o1"}')
    with pytest.raises(InvalidEvent, match="empty"):
        parse_order(b"")


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
