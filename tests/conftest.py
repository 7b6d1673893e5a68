"""Shared fixtures: the corpus path (``SCULPT_CORPUS_DIR``, default ``../shared/corpus``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    return Path(os.environ.get("SCULPT_CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if not (path / "meshes").is_dir() or not (path / "images").is_dir():
        pytest.skip(f"corpus not found at {path}: set SCULPT_CORPUS_DIR to run corpus tests")
    return path
