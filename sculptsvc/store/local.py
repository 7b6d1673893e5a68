"""The embedded artifact store: a directory on this host, one file per sha256.

Writes are atomic (temp file, fsync, rename), so a crash never leaves a half-written
artifact under its final name, and writing the same bytes twice is a no-op: replays and
retries cost no disk. Every reader must see the same directory at the same path: for more
than one host use the S3 store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from sculptsvc.errors import ArtifactMissing, StorageUnavailable, StoreMisconfigured
from sculptsvc.events import ArtifactRef
from sculptsvc.store.base import (
    BLOB_DIR,
    RECORD_DIR,
    StoredObject,
    blob_key,
    check_record_name,
    sha256_hex,
    verify,
)


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
        return self.root / blob_key(sha)

    def describe(self) -> str:
        return self.root.as_uri()

    def create_bucket(self) -> bool:
        """The local twin of creating a bucket: make the directory; True if it was new."""
        existed = self.root.is_dir()
        self.check()
        return not existed

    def check(self) -> None:
        """The directory exists (or can be made) and this process may write into it."""
        try:
            for sub in (BLOB_DIR, RECORD_DIR):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreMisconfigured(f"cannot create the store at {self.root}: {exc}") from exc
        if not os.access(self.root / RECORD_DIR, os.W_OK | os.X_OK):
            raise StoreMisconfigured(f"{self.root} is not writable by this process")

    def ref(self, data: bytes, media_type: str) -> ArtifactRef:
        sha = sha256_hex(data)
        return ArtifactRef(
            uri=self._blob_path(sha).as_uri(),
            sha256=sha,
            size_bytes=len(data),
            media_type=media_type,
        )

    def put(self, data: bytes, media_type: str) -> ArtifactRef:
        ref = self.ref(data, media_type)
        self.write(ref, data)
        return ref

    def write(self, ref: ArtifactRef, data: bytes) -> None:
        path = self._blob_path(ref.sha256)
        try:
            if not (path.exists() and path.stat().st_size == len(data)):
                _atomic_write(path, data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write artifact {ref.sha256}: {exc}") from exc

    def get(self, ref: ArtifactRef | str) -> bytes:
        uri = ref.uri if isinstance(ref, ArtifactRef) else ref
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise StorageUnavailable(f"{uri} is not in this store ({self.root})")
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactMissing(f"{uri} does not exist") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {uri}: {exc}") from exc
        if isinstance(ref, ArtifactRef):
            verify(ref, data)
        return data

    def _record_path(self, name: str) -> Path:
        return self.root / RECORD_DIR / check_record_name(name)

    def put_record(self, name: str, data: bytes) -> None:
        try:
            _atomic_write(self._record_path(name), data)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write record {name}: {exc}") from exc

    def get_record(self, name: str) -> bytes | None:
        path = self._record_path(name)
        return path.read_bytes() if path.exists() else None

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        base = self.root / prefix
        for path in sorted(base.rglob("*")) if base.is_dir() else ():
            if path.is_file() and not path.name.startswith(".tmp-"):
                stat = path.stat()
                yield StoredObject(
                    key=path.relative_to(self.root).as_posix(),
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                    size_bytes=stat.st_size,
                )

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = (self.root / key).resolve()
            if not path.is_relative_to(self.root):
                raise ValueError(f"{key!r} is outside the store")
            path.unlink(missing_ok=True)
