"""The error tree of sculptsvc, mapped once to what the consumer does with an order.

    SculptError                      every error carries a machine-readable ``code``
    ├── RejectedInput                the order itself is bad: never retried,
    │   ├── InvalidEvent             status ``rejected`` + dead letter
    │   ├── InvalidImage
    │   ├── ImageTooLarge
    │   ├── NoSubject
    │   ├── UriNotAllowed
    │   └── UnrepairableMesh
    │       └── UnreadableMesh       no reader parses the file into triangles
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
    │   ├── ImageUnavailable     the image URI did not answer (timeout, 5xx, 429)
    │   ├── PoolClosed               the worker pool shut down before the job ran/finished
    │   └── PublishFailed            Kafka refused the outcome: nothing was committed
    └── ConfigurationError           the service is set up wrong: refuse to start
        ├── ModelUnavailable         model weights missing or not matching their config
        ├── WorkerStartFailed        a worker process could not start or load its models
        └── StoreMisconfigured       store URL, endpoint, bucket or credentials are wrong

Codes are part of the public ``OrderStatus``/``DeadLetter`` contracts: add, never rename.

What happens to an order after an error is decided in one place, :func:`disposition`:

    reject         RejectedInput                      status ``rejected`` + dead letter
    fail           ProcessingFailed, anything untyped status ``failed`` + dead letter
    retry          TransientError, attempts left       back off, run the job again (a worker
                                                      crash: the pool, on a fresh worker)
    fail           TransientError, attempts spent      status ``failed`` + dead letter
    redeliver      PoolClosed, PublishFailed           commit nothing: the message is read again
    configuration  ConfigurationError                  the deployment is wrong: refuse to start

The artifact store's own calls (uploads, ledger) never reach :func:`disposition`: an outage
is nobody's fault, so ``store.waiting.StoreWaiter`` waits ``StorageUnavailable`` out (backoff,
``/ready`` says why) and the order is neither retried as a job nor dead-lettered.

Errors of the standalone ``mold`` package enter the tree through :func:`from_mold_error`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mold.errors import MoldError


class SculptError(Exception):
    """Base of every error this service raises on purpose."""

    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False
    redeliver: ClassVar[bool] = False
    """True: no outcome is published; the input message is consumed again (later)."""

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


class UnreadableMesh(UnrepairableMesh):
    """A mesh file no reader can parse into triangles; the message names the format problem."""

    code = "mesh_unreadable"


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
    retried_by_pool: ClassVar[bool] = False
    """True: the worker pool already retries it on fresh workers; callers must not again."""


class WorkerCrashed(TransientError):
    code = "worker_crashed"
    retried_by_pool = True


class JobTimeout(TransientError):
    code = "job_timeout"


class StorageUnavailable(TransientError):
    code = "storage_unavailable"


class ImageUnavailable(TransientError):
    """The order's image URI did not answer in time, or answered that it could not serve it
    now (HTTP 5xx, 408, 429): the order is fine, the shop's server is not, for now."""

    code = "image_unavailable"


class PoolClosed(TransientError):
    """The worker pool shut down first; the order was not finished and may be redelivered."""

    code = "pool_closed"
    redeliver = True


class PublishFailed(TransientError):
    """The outcome could not be committed; the input message must be consumed again."""

    code = "publish_failed"
    redeliver = True


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


# --- what to do about an error --------------------------------------------------------------


class Action(StrEnum):
    retry = "retry"
    reject = "reject"
    fail = "fail"
    redeliver = "redeliver"
    configuration = "configuration"


def disposition(
    error: BaseException, *, attempt: int = 1, max_attempts: int = 1, in_pool: bool = False
) -> Action:
    """What to do after ``error`` on try ``attempt`` of ``max_attempts``.

    ``in_pool``: the worker pool asks (about a crash it may retry on a fresh worker); a
    ``retried_by_pool`` error that reached the caller has had its retries, so it fails.
    """
    if isinstance(error, SculptError) and error.redeliver:
        return Action.redeliver
    if isinstance(error, ConfigurationError):
        return Action.configuration
    if isinstance(error, RejectedInput):
        return Action.reject
    if isinstance(error, TransientError):
        if error.retried_by_pool and not in_pool:
            return Action.fail
        return Action.retry if attempt < max_attempts else Action.fail
    return Action.fail


def qualified_name(module: str, qualname: str) -> str:
    """``ValueError`` for builtins, ``package.module.Class`` otherwise."""
    return qualname if module == "builtins" else f"{module}.{qualname}"


def unknown_error(type_name: str, message: str) -> ProcessingFailed:
    """What the caller sees for an exception that is not a ``SculptError`` (a bug)."""
    return ProcessingFailed(f"{type_name}: {message}", error_type=type_name, error_message=message)


def as_sculpt_error(error: BaseException) -> SculptError:
    """``error`` itself when it is typed; otherwise ``ProcessingFailed`` naming its class."""
    if isinstance(error, SculptError):
        return error
    cls = type(error)
    failure = unknown_error(qualified_name(cls.__module__, cls.__qualname__), str(error))
    failure.__cause__ = error
    return failure


def from_mold_error(error: MoldError) -> SculptError:
    """The one mapping of ``mold`` errors onto this tree: a spec that does not fit the part is
    a bad order, an unusable part a rejected input, anything else a failed mold."""
    from mold.errors import InvalidSpec

    detail: dict[str, Any] = {"mold_code": error.code, **error.detail}
    message = f"mold: {error.message}"
    if isinstance(error, InvalidSpec):
        return InvalidEvent(f"mold options do not fit this sculpture: {error.message}", **detail)
    if error.rejects_input:
        return UnrepairableMesh(message, **detail)
    return MoldFailed(message, **detail)
