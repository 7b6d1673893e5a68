"""The S3 artifact store: ``s3://bucket/prefix`` on AWS S3 or any S3-compatible server.

Client: boto3 (the AWS SDK). It reads credentials from the standard AWS chain (environment,
shared config and profiles, SSO, container and instance roles) exactly as every other AWS
tool does, so an operator configures nothing of ours for them; we never read, log or echo
a credential. Its standard retry mode already absorbs single failed requests; what lasts
longer becomes ``StorageUnavailable`` and the caller waits (see the service processor).

Layout under the prefix (the same as the local store's directory):

    {prefix}/blobs/ab/abcdef...64 hex    content-addressed artifacts (key = sha256)
    {prefix}/records/ledger/...          the ledger (one JSON record per order revision)

Writes are single PUTs carrying ``Content-MD5``: S3 makes an object visible only once the
whole body arrived and matched, so a writer killed mid-upload leaves nothing under the
final key. A blob that already exists with the same size is not uploaded again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from sculptsvc.errors import ArtifactMissing, StorageUnavailable, StoreMisconfigured
from sculptsvc.events import ArtifactRef
from sculptsvc.settings import Settings
from sculptsvc.store.base import (
    RECORD_DIR,
    StoredObject,
    blob_key,
    check_record_name,
    sha256_hex,
    verify,
)

MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
DENIED_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
STARTUP_PROBE = "_startup-check"
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes


def client_config(settings: Settings) -> Config:
    style = settings.s3_addressing_style
    if style == "auto" and settings.s3_endpoint_url:
        style = "path"  # S3-compatible servers rarely have wildcard DNS for bucket hosts
    return Config(
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
        retries={"mode": "standard", "max_attempts": settings.s3_max_attempts},
        # botocore >= 1.36 adds CRC checksums to every request by default; several
        # S3-compatible servers (s3proxy 2.6, older MinIO/Ceph) refuse them. Content-MD5,
        # which every S3 server checks, guards our uploads instead.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": style},
        max_pool_connections=16,
    )


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")


class S3ArtifactStore:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        settings: Settings,
        *,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = settings.s3_endpoint_url
        self._client = client or boto3.session.Session().client(
            "s3", endpoint_url=settings.s3_endpoint_url, config=client_config(settings)
        )

    # -- names --------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def describe(self) -> str:
        where = self.endpoint_url or "AWS S3"
        return f"{self.uri(self.prefix)} at {where}"

    def _key_of(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise StorageUnavailable(f"{uri} is not in this store ({self.describe()})")
        return parsed.path.lstrip("/")

    # -- blobs --------------------------------------------------------------------------

    def ref(self, data: bytes, media_type: str) -> ArtifactRef:
        sha = sha256_hex(data)
        key = self._key(blob_key(sha))
        return ArtifactRef(
            uri=self.uri(key), sha256=sha, size_bytes=len(data), media_type=media_type
        )

    def put(self, data: bytes, media_type: str) -> ArtifactRef:
        ref = self.ref(data, media_type)
        self.write(ref, data)
        return ref

    def write(self, ref: ArtifactRef, data: bytes) -> None:
        key = self._key(blob_key(ref.sha256))
        if self._size_of(key) == len(data):
            return  # same bytes already there: content addressing makes this a no-op
        self._put(key, data, ref.media_type, metadata={"sha256": ref.sha256})

    def get(self, ref: ArtifactRef | str) -> bytes:
        uri = ref.uri if isinstance(ref, ArtifactRef) else ref
        key = self._key_of(uri)
        try:
            data = self._call("get_object", Key=key)["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in MISSING_CODES:
                raise ArtifactMissing(f"{uri} does not exist") from exc
            raise StorageUnavailable(f"cannot read {uri}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot read {uri}: {exc}") from exc
        if isinstance(ref, ArtifactRef):
            verify(ref, data)
        return data

    # -- records ------------------------------------------------------------------------

    def put_record(self, name: str, data: bytes) -> None:
        key = self._key(f"{RECORD_DIR}/{check_record_name(name)}")
        self._put(key, data, "application/json")

    def get_record(self, name: str) -> bytes | None:
        key = self._key(f"{RECORD_DIR}/{check_record_name(name)}")
        try:
            return self._call("get_object", Key=key)["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in MISSING_CODES:
                return None
            raise StorageUnavailable(f"cannot read record {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot read record {name}: {exc}") from exc

    # -- start-up -----------------------------------------------------------------------

    def check(self) -> None:
        """The bucket exists and these credentials may write and read records in it."""
        where = f"SCULPT_S3_ENDPOINT_URL={self.endpoint_url}" if self.endpoint_url else "AWS S3"
        try:
            self.put_record(STARTUP_PROBE, b"{}")
            self.get_record(STARTUP_PROBE)
        except StorageUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, NoCredentialsError):
                raise StoreMisconfigured(
                    "no AWS credentials found for SCULPT_STORE_URL (standard chain: "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance role)"
                ) from None
            if isinstance(cause, ClientError):
                code = _error_code(cause)
                if code in NO_BUCKET_CODES:
                    raise StoreMisconfigured(
                        f"SCULPT_STORE_URL names bucket {self.bucket!r}, which does not exist "
                        f"at {where}"
                    ) from None
                if code in DENIED_CODES:
                    raise StoreMisconfigured(
                        f"{where} rejected the AWS credentials for SCULPT_STORE_URL bucket "
                        f"{self.bucket!r} ({code}): check AWS_ACCESS_KEY_ID, "
                        "AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
                    ) from None
            raise StorageUnavailable(
                f"artifact store {self.describe()} unreachable: {cause or exc}"
            ) from None

    def create_bucket(self) -> bool:
        """Create the bucket unless it exists (``sculpt store init``); True if created."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if _error_code(exc) not in MISSING_CODES | NO_BUCKET_CODES:
                raise StorageUnavailable(f"cannot check bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach {self.describe()}: {exc}") from exc
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"cannot create bucket {self.bucket}: {exc}") from exc
        return True

    # -- retention (sculpt store gc) ---------------------------------------------------

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        root = self._key("")
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # folder markers some servers list
                    yield StoredObject(
                        key=obj["Key"].removeprefix(root),
                        modified=obj["LastModified"],
                        size_bytes=int(obj["Size"]),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"cannot list {self.uri(self._key(prefix))}: {exc}") from exc

    def delete(self, keys: Sequence[str]) -> None:
        """Batches of DeleteObjects; one DeleteObject per key where a server refuses the
        batch call (it needs a checksum header that s3proxy and older servers reject)."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [self._key(k) for k in keys[start : start + DELETE_BATCH]]
            try:
                try:
                    self._call(
                        "delete_objects",
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    )
                except ClientError:
                    for key in batch:
                        self._call("delete_object", Key=key)
            except (ClientError, BotoCoreError) as exc:
                raise StorageUnavailable(f"cannot delete from {self.describe()}: {exc}") from exc

    # -- internals ----------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return getattr(self._client, operation)(Bucket=self.bucket, **kwargs)

    def _put(self, key: str, data: bytes, media_type: str, metadata: dict | None = None) -> None:
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        try:
            self._call(
                "put_object",
                Key=key,
                Body=data,
                ContentMD5=md5,
                ContentType=media_type,
                Metadata=metadata or {},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"cannot write {self.uri(key)}: {exc}") from exc

    def _size_of(self, key: str) -> int | None:
        try:
            return int(self._call("head_object", Key=key)["ContentLength"])
        except ClientError as exc:
            if _error_code(exc) in MISSING_CODES:
                return None
            raise StorageUnavailable(f"cannot reach {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach {self.uri(key)}: {exc}") from exc
