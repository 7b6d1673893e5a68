"""The content-addressed store: addresses, atomicity, integrity, path safety."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sculptsvc.errors import ArtifactMismatch, StorageUnavailable, StoreMisconfigured
from sculptsvc.settings import Settings
from sculptsvc.store import LocalArtifactStore, open_store


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"glb bytes" * 1000
    ref1 = store.put(data, "model/gltf-binary")
    ref2 = store.put(data, "model/gltf-binary")
    assert ref1 == ref2
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
