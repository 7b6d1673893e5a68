"""Shared fixtures: the corpus path (``SCULPT_CORPUS_DIR``, default ``../shared/corpus``)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# Mesa's llvmpipe (previews) and triton (imported by torch._dynamo, which diffusers imports)
# each bring their own LLVM; importing triton after the first preview render crashes the
# process (SIGSEGV). Workers load the AI backends before they render anything
# (``sculptsvc.jobs.init_worker``); this test process renders and loads models in any order,
# so it takes the same order up front.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    return Path(os.environ.get("SCULPT_CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if not (path / "meshes").is_dir() or not (path / "images").is_dir():
        pytest.skip(f"corpus not found at {path}: set SCULPT_CORPUS_DIR to run corpus tests")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI (``CI=true``) a skip means the bootstrap missed a tool (broker, validator,
    slicer, corpus): fail loudly instead of passing with less proof."""
    outcome = yield
    report = outcome.get_result()
    in_ci = os.environ.get("CI", "").lower() in ("1", "true")
    if in_ci and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything must be installed: {report.longrepr}"


_SESSION = pytest.StashKey[pytest.Session]()
# statuses of a run that went to the end and reported (any other, an internal or usage
# error, ends as pytest ends it, with its message)
_REPORTED = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the session for :func:`pytest_unconfigure`, which reads its final status."""
    session.config.stash[_SESSION] = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process without native teardown, as the one-shot commands end
    (``sculptsvc/commands/_exit.py``). After every test has passed and the summary is
    written, manifold3d's pool threads are still freeing memory while the interpreter and
    the libraries' static destructors tear down; in some test orders glibc then aborts
    ("malloc_consolidate(): unaligned fastbin chunk detected", in a manifold3d thread) and
    the run reads as failed. Only a ``pytest`` process whose run reported normally ends
    here: an error on its way out, ``--debug``, or ``pytest.main()`` called by another
    program end as pytest ends them."""
    session = config.stash.get(_SESSION, None)
    if session is None or sys.exc_info()[1] is not None or config.option.debug:
        return
    if "pytest" not in Path(sys.argv[0]).parts[-2:]:  # .../bin/pytest, .../pytest/__main__.py
        return  # pytest.main() inside another program: it goes on after this
    status = session.exitstatus
    if status not in _REPORTED:
        return
    from sculptsvc.commands._exit import exit_now

    exit_now(int(status))
