"""The artifact store seam: content-addressed blobs plus small named records (claim check).

    ArtifactStore           what the service, replay and the station use
    ├── LocalArtifactStore  ``file:///dir``: one host (the embedded default)
    └── S3ArtifactStore     ``s3://bucket/prefix``: any S3-compatible server, many hosts

Every implementation keeps the same promises:
- a blob's key is its sha256: writing the same bytes twice costs no second upload, and a
  reader verifies what it got against the sha256 in the claim check;
- nothing partial is ever visible under a final name (atomic rename on disk; a single PUT
  on S3 becomes visible only once the server has the whole, MD5-checked body);
- errors of the store itself are ``StorageUnavailable`` (transient: retry later) or, at
  start-up, ``StoreMisconfigured`` (the setting is wrong: refuse to start, name it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sculptsvc.errors import ArtifactMismatch
from sculptsvc.events import ArtifactRef

BLOB_DIR = "blobs"
RECORD_DIR = "records"


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's root: "blobs/ab/ab12...", "records/ledger/..."
    modified: datetime  # aware, UTC
    size_bytes: int


class ArtifactStore(Protocol):
    def put(self, data: bytes, media_type: str) -> ArtifactRef: ...

    def ref(self, data: bytes, media_type: str) -> ArtifactRef:
        """What :meth:`put` returns for these bytes, without writing them: an order's events
        can name its artifacts while they are being uploaded."""
        ...

    def write(self, ref: ArtifactRef, data: bytes) -> None:
        """Store ``data`` under ``ref``, which :meth:`ref` made from these very bytes (so
        they are hashed once); ``put`` is ``ref`` then ``write``."""
        ...

    def get(self, ref: ArtifactRef | str) -> bytes: ...

    def put_record(self, name: str, data: bytes) -> None:
        """Small mutable records (the ledger), keyed by a sanitised name."""
        ...

    def get_record(self, name: str) -> bytes | None: ...

    def check(self) -> None:
        """Raise ``StoreMisconfigured`` or ``StorageUnavailable`` unless the store works."""
        ...

    def describe(self) -> str:
        """Where the store is, for logs and errors (never a credential)."""
        ...

    def create_bucket(self) -> bool:
        """Create the bucket (directory) if missing, for ``sculpt store init``."""
        ...

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Everything under ``prefix`` (``blobs/``, ``records/``), for ``sculpt store gc``."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Remove objects by key (relative to the root); missing ones are no error."""
        ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_key(sha: str) -> str:
    """``blobs/ab/abcdef...``: the first two hex digits spread blobs over 256 folders."""
    return f"{BLOB_DIR}/{sha[:2]}/{sha}"


def check_record_name(name: str) -> str:
    if not name or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"bad record name {name!r}")
    return name


def verify(ref: ArtifactRef, data: bytes) -> None:
    """Raise ``ArtifactMismatch`` (detail ``reason``: size or sha256) unless ``data`` is
    exactly what the claim check describes."""
    if len(data) != ref.size_bytes:
        raise ArtifactMismatch(
            f"{ref.uri} is {len(data)} bytes, the claim check says {ref.size_bytes}",
            reason="size_mismatch",
        )
    actual = sha256_hex(data)
    if actual != ref.sha256:
        raise ArtifactMismatch(
            f"{ref.uri} has sha256 {actual}, the claim check says {ref.sha256}",
            reason="sha256_mismatch",
        )
