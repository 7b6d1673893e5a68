"""The Studio's pages without a browser or a broker: artifacts by hash, security, orders
from events, uploads, and the design -> order mapping (Datasette-style HTML assertions)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from sculptsvc.events import (
    DeadLetter,
    ErrorInfo,
    InlineImage,
    Mode,
    ModelReady,
    MoldReady,
    OrderState,
    OrderStatus,
)
from sculptsvc.pipeline import options_from_order
from sculptsvc.settings import Settings
from sculptsvc.store import LocalArtifactStore
from sculptsvc.studio.app import create_app
from sculptsvc.studio.artifacts import ByteRange, Unsatisfiable, parse_range
from sculptsvc.studio.design import DesignParams, InvalidDesign, params_from_form
from sculptsvc.studio.orders import Coordinates, OrderIndex

TOKEN = "tok-" + "x" * 20


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        artifact_root=tmp_path / "artifacts",
        log_format="console",
        studio_tokens={"alice": TOKEN},
        max_image_bytes=200_000,
        max_image_pixels=1_000_000,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, start_pool=False, follow_kafka=False)
    with TestClient(app) as c:
        c.studio = app.state.studio
        yield c


def csrf(client: TestClient) -> str:
    page = client.get("/design")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def at(offset: int, topic: str = "t") -> Coordinates:
    return Coordinates(topic, 0, offset, 1_700_000_000_000 + offset)


def publish_order(client: TestClient, order_id: str = "ord-1") -> dict[str, bytes]:
    """The events of one completed order, filed into the Studio's index."""
    store = LocalArtifactStore(client.studio.settings.artifact_root)
    blobs = {name: f"{name} bytes".encode() for name in ("glb", "png", "a", "b", "3mf")}
    blobs["report"] = b'{"not": "a pipeline report"}'
    refs = {
        name: store.put(data, media)
        for (name, data), media in zip(
            blobs.items(),
            [
                "model/gltf-binary",
                "image/png",
                "model/stl",
                "model/stl",
                "model/3mf",
                "application/json",
            ],
            strict=True,
        )
    }
    index = client.studio.index
    for i, state in enumerate(["accepted", "stylized", "completed"]):
        status = OrderStatus(order_id=order_id, state=OrderState(state))
        index.ingest("status", at(i), order_id.encode(), status.model_dump_json().encode())
    model = ModelReady(
        order_id=order_id,
        glb=refs["glb"],
        preview=refs["png"],
        triangles=20000,
        watertight=True,
        mode=Mode.multicolor,
    )
    mold = MoldReady(
        order_id=order_id,
        half_a=refs["a"],
        half_b=refs["b"],
        three_mf=refs["3mf"],
        report=refs["report"],
        cavity_volume_ml=12.5,
        material="pla",
    )
    index.ingest("model", at(0), order_id.encode(), model.model_dump_json().encode())
    index.ingest("mold", at(0), order_id.encode(), mold.model_dump_json().encode())
    return blobs


def reject_order(client: TestClient, order_id: str, original: bytes) -> None:
    index = client.studio.index
    status = OrderStatus(
        order_id=order_id,
        state=OrderState.rejected,
        error=ErrorInfo(code="invalid_image", message="the image data is corrupt"),
    )
    index.ingest("status", at(10), order_id.encode(), status.model_dump_json().encode())
    letter = DeadLetter(
        order_id=order_id,
        original_topic="orders",
        original_partition=0,
        original_offset=7,
        original_key_base64=None,
        original_value_base64=base64.b64encode(original).decode(),
        error_class="InvalidImage",
        error_code="invalid_image",
        error_message="corrupt",
    )
    index.ingest("dlq", at(11), order_id.encode(), letter.model_dump_json().encode())


# --- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),  # several ranges: the whole body
        ("items=0-1", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


def test_range_past_the_end_is_unsatisfiable() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=1000-", 1000)


# --- artifacts ------------------------------------------------------------------------------


def test_artifacts_by_hash_with_etag_ranges_and_media_type(client: TestClient) -> None:
    blobs = publish_order(client)
    sha = hashlib.sha256(blobs["glb"]).hexdigest()
    whole = client.get(f"/artifacts/{sha}")
    assert whole.status_code == 200 and whole.content == blobs["glb"]
    assert whole.headers["content-type"] == "model/gltf-binary"
    assert whole.headers["etag"] == f'"{sha}"'
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/artifacts/{sha}", headers={"Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == blobs["glb"][2:6]
    assert part.headers["content-range"] == f"bytes 2-5/{len(blobs['glb'])}"
    assert client.get(f"/artifacts/{sha}", headers={"Range": "bytes=999-"}).status_code == 416
    assert client.get(f"/artifacts/{sha}", headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    stl = client.get(f"/artifacts/{hashlib.sha256(blobs['a']).hexdigest()}?download")
    assert stl.headers["content-type"] == "model/stl"
    assert stl.headers["content-disposition"].startswith("attachment")


def test_nothing_but_known_hashes_is_reachable(client: TestClient, settings: Settings) -> None:
    publish_order(client)
    stray = LocalArtifactStore(settings.artifact_root).put(b"not named by any event", "text/plain")
    secret = settings.artifact_root / "records" / "secret"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(b"ledger")
    for path in (
        f"/artifacts/{stray.sha256}",  # in the store, but no event names it
        "/artifacts/" + "A" * 64,
        "/artifacts/..%2F..%2Frecords%2Fsecret",
        "/artifacts/%2e%2e/%2e%2e/etc/passwd",
        "/vendor/..%2F..%2Fpyproject.toml",
        "/vendor/three/../../../pyproject.toml",
        "/static/..%2Fapp.py",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"ledger" not in response.content


def test_security_headers_on_every_page(client: TestClient) -> None:
    for path in (
        "/orders",
        "/design",
        "/artifacts/" + "0" * 64,
        "/vendor/three/three.module.min.js",
    ):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self' 'nonce-" in csp
        assert "http" not in csp  # no CDN or other host
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


def test_vendor_scripts_come_from_npm_packages(client: TestClient) -> None:
    viewer = client.get("/vendor/model-viewer-module.min.js")
    assert viewer.status_code == 200, "run scripts/bootstrap (npm install in tools/)"
    assert viewer.headers["content-type"].startswith("text/javascript")
    assert b"model-viewer" in viewer.content
    page = client.get("/design").text
    assert not re.search(r'(src|href)="(https?:)?//', page), "a page loads from another host"


# --- orders ---------------------------------------------------------------------------------


def test_orders_list_filters_by_state_and_error_code(client: TestClient) -> None:
    publish_order(client, "ord-good")
    reject_order(client, "ord-bad", b"original bytes")
    listing = client.get("/orders").text
    assert "ord-good" in listing and "ord-bad" in listing
    rejected = client.get("/orders?state=rejected").text
    assert "ord-bad" in rejected and "ord-good" not in rejected
    coded = client.get("/orders?error_code=invalid_image").text
    assert "ord-bad" in coded and "ord-good" not in coded
    assert "ord-bad" not in client.get("/orders?state=completed").text


def test_order_page_timeline_error_and_dead_letter_download(client: TestClient) -> None:
    reject_order(client, "ord-bad", b"\x00original\xffbytes")
    page = client.get("/orders/ord-bad").text
    assert '<code class="error-code">invalid_image</code>' in page
    assert "the image data is corrupt" in page
    download = client.get("/orders/ord-bad/dead-letters/0")
    assert download.content == b"\x00original\xffbytes"
    assert download.headers["content-disposition"].startswith("attachment")
    assert client.get("/orders/ord-bad/dead-letters/1").status_code == 404
    assert client.get("/orders/nobody").status_code == 404


def test_order_page_shows_the_viewers(client: TestClient) -> None:
    blobs = publish_order(client)
    page = client.get("/orders/ord-1").text
    assert f'src="/artifacts/{hashlib.sha256(blobs["glb"]).hexdigest()}"' in page
    assert f'data-half-a="/artifacts/{hashlib.sha256(blobs["a"]).hexdigest()}"' in page


def test_index_keeps_the_most_recent_orders() -> None:
    index = OrderIndex(max_orders=2)
    for i in range(3):
        status = OrderStatus(order_id=f"o{i}", state=OrderState.accepted)
        index.ingest("status", at(i), None, status.model_dump_json().encode())
    index.ingest("status", at(9), None, b"not json")  # skipped, not fatal
    assert [o.order_id for o in index.listing()] == ["o2", "o1"]


# --- actions: CSRF and tokens ---------------------------------------------------------------


def test_actions_need_csrf_and_a_token_and_never_echo_it(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    publish_order(client)
    no_csrf = client.post("/orders/ord-1/replay", data={"token": TOKEN, "target": "qa"})
    assert no_csrf.status_code == 403
    token = csrf(client)
    wrong = client.post("/orders/ord-1/replay", data={"csrf": token, "token": "guess"})
    assert wrong.status_code == 403 and "wrong or missing token" in wrong.text
    cross = client.post(
        "/orders/ord-1/replay",
        data={"csrf": token, "token": TOKEN},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    for response in (no_csrf, wrong, cross):
        assert TOKEN not in response.text
    assert TOKEN not in caplog.text


def test_actions_are_off_without_tokens(tmp_path: Path) -> None:
    settings = Settings(artifact_root=tmp_path, log_format="console")
    app = create_app(settings, start_pool=False, follow_kafka=False)
    with TestClient(app) as c:
        token = csrf(c)
        response = c.post("/orders/x/replay", data={"csrf": token, "token": ""})
        assert response.status_code == 403 and "SCULPT_STUDIO_TOKENS" in response.text


# --- uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_image"),
        (b"GIF89a not really", "invalid_image"),
        (png()[:60], "invalid_image"),  # cut off
        (png((16, 16)), "invalid_image"),  # too small to sculpt
        (png((1200, 1000)), "image_too_large"),  # 1.2 Mpx over the 1 Mpx limit (header check)
        (b"\x89PNG" + b"\0" * 250_000, "image_too_large"),  # over the byte limit
    ],
)
def test_broken_uploads_get_a_message_not_a_stack_trace(
    client: TestClient, data: bytes, code: str
) -> None:
    response = client.post(
        "/design",
        data={"csrf": csrf(client), "mode": "multicolor"},
        files={"picture": ("p.png", data, "image/png")},
    )
    assert response.status_code in (400, 422)
    if data:
        assert f'<code class="error-code">{code}</code>' in response.text
    assert 'id="upload-error"' in response.text
    assert "Traceback" not in response.text


def test_upload_without_csrf_is_refused(client: TestClient) -> None:
    response = client.post("/design", files={"picture": ("p.png", png(), "image/png")})
    assert response.status_code == 403


def test_design_parameters_use_the_order_contract_bounds(client: TestClient) -> None:
    response = client.post(
        "/design",
        data={"csrf": csrf(client), "size_mm": "1000", "mode": "multicolor"},
        files={"picture": ("p.png", png(), "image/png")},
    )
    assert response.status_code == 422 and "size_mm" in response.text


# --- design -> order ------------------------------------------------------------------------


def test_design_becomes_the_order_the_factory_runs(settings: Settings) -> None:
    form = {
        "mode": "solid",
        "color": "#1e88e5",
        "size_mm": "60",
        "wall_mm": "5",
        "parting": "y",
        "relief_depth": "2",
        "thickness": "0.5",
        "smoothing": "3",
        "material": "petg",
    }
    params = params_from_form(form)
    image = InlineImage(media_type="image/png", data_base64=base64.b64encode(png()).decode())
    draft = params.to_order("design-x", image)
    order = params.to_order("shop-order-77", image)
    assert order.shape.relief_depth == 2 and order.shape.thickness == 0.5
    assert order.shape.smoothing == 3 and order.mold.parting == "y"
    # the design's run and the sent order's run get the same pipeline options
    assert options_from_order(draft, settings) == options_from_order(order, settings)
    options = options_from_order(order, settings)
    assert (options.parting, options.relief_depth, options.thickness) == ("y", 2.0, 0.5)
    assert (options.smoothing, options.wall_mm, options.size_mm) == (3, 5.0, 60.0)


def test_design_form_errors_name_the_field() -> None:
    with pytest.raises(InvalidDesign, match="thickness"):
        params_from_form({"thickness": "thick"})
    image = InlineImage(media_type="image/png", data_base64=base64.b64encode(png()).decode())
    with pytest.raises(InvalidDesign, match="relief_depth"):
        DesignParams(relief_depth=9).to_order("o", image)


def test_every_action_form_carries_the_csrf_token(client: TestClient) -> None:
    publish_order(client)
    page = client.get("/orders/ord-1").text
    cookie = client.cookies.get("sculpt_csrf")
    forms = re.findall(r'<form method="post".*?</form>', page, re.S)
    assert len(forms) == 2  # replay, reproduce
    for form in forms:
        assert f'name="csrf" value="{cookie}"' in form
        assert 'name="token"' in form and TOKEN not in form


def test_a_token_holder_gets_past_the_checks(client: TestClient, settings: Settings) -> None:
    design = client.studio.designs.add(
        png(),
        "image/png",
        "p.png",
        LocalArtifactStore(settings.artifact_root).put(png(), "image/png"),
    )
    response = client.post(
        f"/design/{design.id}/order",
        data={"csrf": csrf(client), "token": TOKEN, "order_id": "o-1"},
    )
    assert response.status_code == 422  # authorised, but nothing finished to send yet
    assert "Nothing to send yet" in response.text and TOKEN not in response.text
