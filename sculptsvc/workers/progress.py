"""Stage ends, reported from inside a running job to whoever submitted it.

A job calls :func:`report` (e.g. ``run_pipeline(..., on_stage=progress.report)``); the call
returns once the submitter has handled the event (the service: published the status), so
the next stage starts only after that. Outside a pool (a plain call) it does nothing.

    worker:  report(event) ──("progress", job_id, event)──► pool ──► on_progress(event)
             (blocks)      ◄──────("progress_ack", job_id)──┘      (awaited)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Reporter = Callable[[Any], None]

_reporter: ContextVar[Reporter | None] = ContextVar("sculpt_progress_reporter", default=None)


def report(event: Any) -> None:
    """Hand ``event`` to the job's submitter and wait until it has been handled."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter(event)


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route :func:`report` calls made inside the block (and threads it starts via
    ``asyncio.to_thread``/``copy_context``) to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
