"""Artifact stores behind one seam; ``open_store(settings)`` picks one from
``SCULPT_STORE_URL`` (see ``sculptsvc/store/base.py`` for what every store promises)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sculptsvc.errors import StoreMisconfigured
from sculptsvc.settings import Settings
from sculptsvc.store.base import ArtifactStore, sha256_hex, verify
from sculptsvc.store.local import LocalArtifactStore

__all__ = ["ArtifactStore", "LocalArtifactStore", "open_store", "sha256_hex", "store_url", "verify"]


def store_url(settings: Settings) -> str:
    """The configured store as a URL (``artifact_root`` as ``file://`` when unset)."""
    return settings.store_url or Path(settings.artifact_root).resolve().as_uri()


def open_store(settings: Settings) -> ArtifactStore:
    """The store ``SCULPT_STORE_URL`` names; a malformed URL fails here, naming the setting."""
    url = store_url(settings)
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path:
        return LocalArtifactStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        from sculptsvc.store.s3 import S3ArtifactStore  # boto3 loads only when used

        return S3ArtifactStore(parsed.netloc, unquote(parsed.path), settings)
    raise StoreMisconfigured(
        f"SCULPT_STORE_URL={url!r}: expected file:///absolute/dir or s3://bucket/prefix"
    )
