"""The S3 artifact store against the real S3-compatible server of ``scripts/s3``."""

from __future__ import annotations

import hashlib
import socket
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sculptsvc.errors import (
    ArtifactMismatch,
    ArtifactMissing,
    StorageUnavailable,
    StoreMisconfigured,
)
from sculptsvc.settings import Settings
from sculptsvc.store import open_store
from sculptsvc.store.s3 import S3ArtifactStore
from tests.integration.conftest import S3Store


def make_store(s3_store: S3Store, **extra: object) -> S3ArtifactStore:
    store = open_store(Settings(**{**s3_store.settings(), **extra}))
    assert isinstance(store, S3ArtifactStore)
    return store


def test_blobs_are_content_addressed_and_written_once(s3_store: S3Store) -> None:
    store = make_store(s3_store)
    data = b"glb bytes" * 5000
    named = store.ref(data, "model/gltf-binary")  # what the events say before the upload
    assert s3_store.harness.keys(s3_store.bucket) == [], "ref() writes nothing"
    ref = store.put(data, "model/gltf-binary")
    assert ref == named
    sha = hashlib.sha256(data).hexdigest()
    assert ref.uri == f"s3://{s3_store.bucket}/artifacts/blobs/{sha[:2]}/{sha}"
    assert (ref.sha256, ref.size_bytes) == (sha, len(data))
    client = s3_store.harness.client()
    key = urlparse(ref.uri).path.lstrip("/")
    first = client.head_object(Bucket=s3_store.bucket, Key=key)
    path = s3_store.harness.object_path(s3_store.bucket, key)
    mtime = path.stat().st_mtime_ns
    assert store.put(data, "model/gltf-binary") == ref
    assert path.stat().st_mtime_ns == mtime, "the same bytes must not be uploaded again"
    assert client.head_object(Bucket=s3_store.bucket, Key=key)["ETag"] == first["ETag"]
    assert first["ContentType"] == "model/gltf-binary"
    assert store.get(ref) == data
    assert s3_store.harness.keys(s3_store.bucket) == [key]


def test_changed_bytes_on_the_server_are_refused(s3_store: S3Store) -> None:
    store = make_store(s3_store)
    ref = store.put(b"A" * 1000, "model/stl")
    key = urlparse(ref.uri).path.lstrip("/")
    s3_store.harness.object_path(s3_store.bucket, key).write_bytes(b"B" * 1000)
    with pytest.raises(ArtifactMismatch, match="sha256") as err:
        store.get(ref)
    assert err.value.detail["reason"] == "sha256_mismatch"
    s3_store.harness.object_path(s3_store.bucket, key).write_bytes(b"A" * 999)
    with pytest.raises(ArtifactMismatch) as err:
        store.get(ref)
    assert err.value.detail["reason"] == "size_mismatch"


def test_missing_objects_and_foreign_uris(s3_store: S3Store) -> None:
    store = make_store(s3_store)
    with pytest.raises(ArtifactMissing):
        store.get(f"s3://{s3_store.bucket}/artifacts/blobs/00/{'0' * 64}")
    with pytest.raises(StorageUnavailable, match="not in this store"):
        store.get("s3://another-bucket/x")
    assert store.get_record("ledger/o1/r1.json") is None
    store.put_record("ledger/o1/r1.json", b'{"outcome": "completed"}')
    assert store.get_record("ledger/o1/r1.json") == b'{"outcome": "completed"}'
    with pytest.raises(ValueError):
        store.put_record("../escape", b"x")


def test_start_up_check_names_the_setting(s3_store: S3Store, monkeypatch) -> None:
    make_store(s3_store).check()  # the right bucket and keys: passes
    with pytest.raises(StoreMisconfigured, match=r"SCULPT_STORE_URL.*does not exist"):
        make_store(s3_store, store_url="s3://no-such-bucket-here/p").check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StoreMisconfigured, match="rejected the AWS credentials") as err:
        make_store(s3_store).check()
    assert "wrong-secret" not in str(err.value), "a credential must never be echoed"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(StoreMisconfigured, match="AWS_ACCESS_KEY_ID"):
        make_store(s3_store).check()


def test_unreachable_endpoint_is_transient(s3_store: S3Store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = make_store(s3_store, s3_endpoint_url=f"http://127.0.0.1:{port}", s3_max_attempts=1)
    with pytest.raises(StorageUnavailable, match="unreachable"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.put(b"x", "text/plain")


def test_an_upload_cut_off_midway_leaves_nothing_under_its_key(s3_store: S3Store) -> None:
    """A writer that dies mid-PUT (here: a socket closed after half the body) must not leave
    a partial object that a reader could fetch under the final key."""
    env = s3_store.env
    data = b"x" * 2_000_000
    key = f"artifacts/blobs/ab/{hashlib.sha256(data).hexdigest()}"
    endpoint = urlparse(env["SCULPT_S3_ENDPOINT_URL"])
    url = f"{env['SCULPT_S3_ENDPOINT_URL']}/{s3_store.bucket}/{key}"
    request = AWSRequest(
        method="PUT",
        url=url,
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(len(data))},
    )
    creds = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(creds, "s3", env["AWS_REGION"]).add_auth(request)
    head = f"PUT /{s3_store.bucket}/{key} HTTP/1.1\r\nHost: {endpoint.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k != "Host")
    with socket.create_connection((endpoint.hostname, endpoint.port)) as sock:
        sock.sendall(head.encode() + b"\r\n" + data[: len(data) // 2])
    assert s3_store.harness.keys(s3_store.bucket) == []
    assert not s3_store.harness.object_path(s3_store.bucket, key).exists()


def test_scripts_s3_restarts_keep_port_keys_and_objects(tmp_path) -> None:
    from tests.s3_harness import S3Harness

    harness = S3Harness(tmp_path / "own-s3")
    endpoint = harness.start()
    try:
        assert harness.is_running() and endpoint.startswith("http://127.0.0.1:")
        assert oct((harness.workdir / "s3proxy.conf").stat().st_mode & 0o777) == "0o600"
        env = harness.env()
        bucket = harness.create_bucket()
        harness.client().put_object(Bucket=bucket, Key="k", Body=b"kept")
        assert harness.start() == endpoint  # already running: a no-op
        harness.stop()
        assert not harness.is_running()
        assert harness.start() == endpoint and harness.env() == env
        assert harness.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
        harness.kill()  # a crash: the objects are files, they survive it too
        harness.start()
        assert harness.keys(bucket) == ["k"]
    finally:
        harness.stop()


async def test_large_dead_letter_inputs_go_to_the_s3_store(s3_store: S3Store) -> None:
    from sculptsvc.events import DeadLetter
    from sculptsvc.service.processor import InboundRecord, OrderProcessor

    class Publisher:
        def __init__(self) -> None:
            self.sent: list = []

        async def publish(self, messages, *, source, commit):  # type: ignore[no-untyped-def]
            self.sent += messages

        async def publish_progress(self, message, *, source):  # type: ignore[no-untyped-def]
            self.sent.append(message)

        async def already_committed(self, record) -> bool:  # type: ignore[no-untyped-def]
            return False

    settings = Settings(**s3_store.settings(), dead_letter_inline_bytes=1000)
    publisher = Publisher()
    processor = OrderProcessor(settings, publisher, None, open_store(settings))  # type: ignore[arg-type]
    huge = b"{" + b"x" * 50_000
    await processor.handle(InboundRecord("orders", 0, 7, b"o1", huge))
    letters = [m.value for m in publisher.sent if m.topic == settings.topic_dlq]
    (letter,) = [DeadLetter.model_validate_json(v) for v in letters]
    assert letter.original_value_base64 is None and letter.original_value_ref is not None
    assert letter.original_value_ref.uri.startswith(f"s3://{s3_store.bucket}/artifacts/blobs/")
    assert open_store(settings).get(letter.original_value_ref) == huge


def test_gc_on_s3_keeps_what_recent_outcomes_use(s3_store: S3Store) -> None:
    import os
    import time

    from tests.unit.test_store import check_gc

    store = make_store(s3_store)
    year_ago = time.time() - 400 * 86400

    def make_old(key: str) -> None:  # the filesystem backend's LastModified is the file's mtime
        path = s3_store.harness.object_path(s3_store.bucket, f"{s3_store.prefix}/{key}")
        os.utime(path, (year_ago, year_ago))

    check_gc(store, make_old)
