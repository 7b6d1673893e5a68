"""The error tree of sculptsvc, mapped once to what the consumer does with an order.

    SculptError                      every error carries a machine-readable ``code``
    ├── RejectedInput                the order itself is bad: never retried,
    │   ├── InvalidEvent             status ``rejected`` + dead letter
    │   ├── InvalidImage
    │   ├── ImageTooLarge
    │   ├── NoSubject
    │   ├── UriNotAllowed
    │   └── UnrepairableMesh
    ├── ProcessingFailed             the input was fine but the pipeline could not make a
    │   ├── MoldFailed               castable result: status ``failed`` + dead letter
    │   ├── ModelOutputInvalid
    │   ├── MeshProcessingFailed
    │   ├── ArtifactMismatch         stored bytes differ from their claim check (size, sha256)
    │   └── ArtifactMissing          a claim check points at nothing
    ├── TransientError               worth another try with backoff (``retryable``)
    │   ├── WorkerCrashed
    │   ├── JobTimeout
    │   ├── StorageUnavailable
    │   └── PoolClosed               the worker pool shut down before the job ran/finished
    └── ConfigurationError           the service is set up wrong: refuse to start
        ├── ModelUnavailable         model weights missing or not matching their config
        ├── WorkerStartFailed        a worker process could not start or load its models
        └── StoreMisconfigured       store URL, endpoint, bucket or credentials are wrong

Codes are part of the public ``OrderStatus``/``DeadLetter`` contracts: add, never rename.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SculptError(Exception):
    """Base of every error this service raises on purpose."""

    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class RejectedInput(SculptError):
    """The order cannot be made as submitted; the sender must fix it."""

    code = "rejected_input"


class InvalidEvent(RejectedInput):
    code = "invalid_event"


class InvalidImage(RejectedInput):
    code = "invalid_image"


class ImageTooLarge(RejectedInput):
    code = "image_too_large"


class NoSubject(RejectedInput):
    code = "no_subject"


class UriNotAllowed(RejectedInput):
    code = "uri_not_allowed"


class UnrepairableMesh(RejectedInput):
    """A mesh that cannot be made one watertight, consistently oriented solid."""

    code = "mesh_unrepairable"


class ProcessingFailed(SculptError):
    """Valid input, but no castable result came out; retrying gives the same answer."""

    code = "processing_failed"


class MoldFailed(ProcessingFailed):
    code = "mold_failed"


class ModelOutputInvalid(ProcessingFailed):
    code = "model_output_invalid"


class MeshProcessingFailed(ProcessingFailed):
    """A repaired mesh could not be decimated, unwrapped or exported within its checks."""

    code = "mesh_processing_failed"


class ArtifactMismatch(ProcessingFailed):
    """Bytes read from the store do not match the claim check's size or sha256: tampered
    with or corrupted. Never handed on (a factory station refuses to print them)."""

    code = "artifact_mismatch"


class ArtifactMissing(ProcessingFailed):
    """A claim check names an object the store does not have (deleted, or never written)."""

    code = "artifact_missing"


class TransientError(SculptError):
    """Infrastructure hiccup: the same order may well succeed on the next attempt."""

    code = "transient_error"
    retryable = True


class WorkerCrashed(TransientError):
    code = "worker_crashed"


class JobTimeout(TransientError):
    code = "job_timeout"


class StorageUnavailable(TransientError):
    code = "storage_unavailable"


class PoolClosed(TransientError):
    """The worker pool shut down first; the order was not finished and may be redelivered."""

    code = "pool_closed"


class ConfigurationError(SculptError):
    """The deployment is wrong (not the order): raised at start-up so no order is consumed."""

    code = "configuration_error"


class ModelUnavailable(ConfigurationError):
    """A configured model folder is missing, incomplete or does not match its config."""

    code = "model_unavailable"


class WorkerStartFailed(ConfigurationError):
    """A worker process died or raised while loading its models at start-up."""

    code = "worker_start_failed"


class StoreMisconfigured(ConfigurationError):
    """The artifact store cannot be used as configured (``SCULPT_STORE_URL``,
    ``SCULPT_S3_ENDPOINT_URL``, missing bucket, rejected credentials)."""

    code = "store_misconfigured"
