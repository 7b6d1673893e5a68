"""Artifact store: content-addressed blobs behind a small interface (claim check).

The embedded default keeps blobs in a directory, one file per sha256; an S3-compatible
store only has to implement ``ArtifactStore``. Writes are atomic (temp file, fsync,
rename), so a crash never leaves a half-written artifact under its final name, and writing
the same bytes twice is a no-op: replays and retries cost no disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from sculptsvc.errors import StorageUnavailable
from sculptsvc.events import ArtifactRef


class ArtifactStore(Protocol):
    def put(self, data: bytes, media_type: str) -> ArtifactRef: ...

    def get(self, ref: ArtifactRef | str) -> bytes: ...

    def put_record(self, name: str, data: bytes) -> None:
        """Small mutable records (idempotency markers), keyed by a sanitised name."""
        ...

    def get_record(self, name: str) -> bytes | None: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalArtifactStore:
    """``root/blobs/ab/abcdef...`` for blobs, ``root/records/NAME`` for records."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _blob_path(self, sha: str) -> Path:
        return self.root / "blobs" / sha[:2] / sha

    def put(self, data: bytes, media_type: str) -> ArtifactRef:
        sha = sha256_hex(data)
        path = self._blob_path(sha)
        try:
            if not (path.exists() and path.stat().st_size == len(data)):
                _atomic_write(path, data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write artifact {sha}: {exc}") from exc
        return ArtifactRef(
            uri=path.as_uri(), sha256=sha, size_bytes=len(data), media_type=media_type
        )

    def get(self, ref: ArtifactRef | str) -> bytes:
        uri = ref.uri if isinstance(ref, ArtifactRef) else ref
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise StorageUnavailable(f"{uri} is not in this store ({self.root})")
        data = path.read_bytes()
        if isinstance(ref, ArtifactRef) and sha256_hex(data) != ref.sha256:
            raise StorageUnavailable(f"{uri} does not match its sha256")
        return data

    def _record_path(self, name: str) -> Path:
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            raise ValueError(f"bad record name {name!r}")
        return self.root / "records" / name

    def put_record(self, name: str, data: bytes) -> None:
        try:
            _atomic_write(self._record_path(name), data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write record {name}: {exc}") from exc

    def get_record(self, name: str) -> bytes | None:
        path = self._record_path(name)
        return path.read_bytes() if path.exists() else None
