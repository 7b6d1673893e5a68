"""The content-addressed store: addresses, atomicity, integrity, path safety."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sculptsvc.errors import (
    ArtifactMismatch,
    ArtifactMissing,
    StorageUnavailable,
    StoreMisconfigured,
)
from sculptsvc.settings import Settings
from sculptsvc.store import LocalArtifactStore, open_store


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"glb bytes" * 1000
    named = store.ref(data, "model/gltf-binary")  # what the events say before the upload
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").rglob("*"))
    ref1 = store.put(data, "model/gltf-binary")
    ref2 = store.put(data, "model/gltf-binary")
    assert ref1 == ref2 == named
    assert ref1.sha256 == hashlib.sha256(data).hexdigest()
    assert ref1.size_bytes == len(data)
    assert store.get(ref1) == data
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert not list(tmp_path.rglob(".tmp-*"))


def test_corrupted_blob_is_detected(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.put(b"abc", "text/plain")
    Path(ref.uri.removeprefix("file://")).write_bytes(b"abd")
    with pytest.raises(ArtifactMismatch, match="sha256"):
        store.get(ref)


def test_foreign_uris_are_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(StorageUnavailable):
        store.get("file:///etc/passwd")


def test_records_reject_path_tricks(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.put_record("orders/o1/r1.json", b"{}")
    assert store.get_record("orders/o1/r1.json") == b"{}"
    assert store.get_record("orders/o2/r1.json") is None
    for bad in ("../x", "a/../../x", "", "a//b"):
        with pytest.raises(ValueError):
            store.put_record(bad, b"x")


def test_store_url_picks_the_store_and_names_the_setting_when_wrong(tmp_path: Path) -> None:
    default = open_store(Settings(artifact_root=tmp_path / "a"))
    assert isinstance(default, LocalArtifactStore) and default.root == (tmp_path / "a").resolve()
    explicit = open_store(Settings(store_url=(tmp_path / "b").as_uri()))
    assert isinstance(explicit, LocalArtifactStore) and explicit.root == tmp_path / "b"
    explicit.check()
    assert (tmp_path / "b" / "records").is_dir()
    for bad in ("ftp://host/x", "s3://", "file://otherhost/x", "var/artifacts"):
        with pytest.raises(StoreMisconfigured, match="SCULPT_STORE_URL"):
            open_store(Settings(store_url=bad))


def check_gc(store, make_old) -> None:  # type: ignore[no-untyped-def]
    """Shared by the local and the S3 store: ``make_old(key)`` backdates one object."""
    from datetime import UTC, datetime, timedelta

    from sculptsvc.events import DeadLetter
    from sculptsvc.ledger import Ledger, LedgerEntry
    from sculptsvc.service.processor import event_message
    from sculptsvc.store.gc import collect

    def blob_key(ref) -> str:  # type: ignore[no-untyped-def]
        return f"blobs/{ref.sha256[:2]}/{ref.sha256}"

    reused = store.put(b"old bytes a replay of today uses again", "model/stl")
    orphan = store.put(b"old bytes nothing uses any more", "model/stl")
    fresh = store.put(b"new bytes", "model/stl")

    def letter(ref, order_id: str):  # type: ignore[no-untyped-def]
        event = DeadLetter(
            order_id=order_id,
            original_topic="t",
            original_partition=0,
            original_offset=1,
            original_key_base64=None,
            original_value_base64=None,
            original_value_ref=ref,
            error_class="X",
            error_code="x",
            error_message="x",
        )
        return LedgerEntry("t/0/1", "failed", [event_message("dlq", order_id, event).to_json()])

    ledger = Ledger(store)
    ledger.write("today", 1, letter(reused, "today"))
    ledger.write("lastyear", 1, letter(orphan, "lastyear"))
    for key in (blob_key(reused), blob_key(orphan), "records/ledger/lastyear/r1.json"):
        make_old(key)
    now = datetime.now(UTC)
    dry = collect(store, timedelta(days=180), now, dry_run=True)
    assert dry.deleted == [blob_key(orphan)] and dry.referenced == {reused.sha256}
    assert store.get(orphan) == b"old bytes nothing uses any more", "dry run deletes nothing"
    done = collect(store, timedelta(days=180), now)
    assert done.deleted == [blob_key(orphan)] and done.bytes_freed == orphan.size_bytes
    assert store.get(reused) and store.get(fresh)
    with pytest.raises(ArtifactMissing):
        store.get(orphan)


def test_gc_keeps_what_recent_outcomes_use(tmp_path: Path) -> None:
    import os
    import time

    store = LocalArtifactStore(tmp_path)
    year_ago = time.time() - 400 * 86400

    def make_old(key: str) -> None:
        os.utime(tmp_path / key, (year_ago, year_ago))

    check_gc(store, make_old)
