"""docs/operations.md stays true: generated settings table in sync, names and links real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, SecretStr

from sculptsvc import docs
from sculptsvc.service.metrics import Metrics
from sculptsvc.settings import Settings
from sculptsvc.workers import WorkerPool

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
# Written by another engineer in parallel; checked as soon as it exists.
PENDING_LINKS = {"models.md"}


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_settings_block_is_in_sync(text: str) -> None:
    assert docs.render(text) == text, "docs/operations.md is stale: run `make docs`"
    assert docs.main(["--check", "--path", str(DOC)]) == 0


def test_every_setting_has_exactly_one_row(text: str) -> None:
    block = text[text.index(docs.BEGIN) : text.index(docs.END)]
    rows = re.findall(r"^\| `(SCULPT_[A-Z0-9_]+)` \|", block, re.M)
    assert rows == [f"SCULPT_{name.upper()}" for name in Settings.model_fields]
    assert len(rows) == len(set(rows))


def test_render_is_idempotent_and_needs_the_markers(tmp_path: Path) -> None:
    stale = f"# Title\n\n{docs.BEGIN}\n| old | table |\n{docs.END}\n\nAfter.\n"
    once = docs.render(stale)
    assert docs.render(once) == once
    assert once.startswith("# Title") and once.endswith("After.\n")
    assert "| old | table |" not in once
    path = tmp_path / "ops.md"
    path.write_text(stale, encoding="utf-8")
    assert docs.main(["--check", "--path", str(path)]) == 1
    assert docs.main(["--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == once  # as docs.main writes it
    with pytest.raises(ValueError, match="markers"):
        docs.render("no markers here")


class _Example(Settings):
    mode: Literal["a", "b"] = Field("a", description="Pick | one.")
    secret: SecretStr | None = Field(None, description="Hidden.")
    roots: list[Path] = Field(default_factory=lambda: [Path("/x")], description="Roots.")
    count: int = Field(3, ge=1, lt=10, description="Bounded.")


def test_table_formats_types_defaults_and_bounds() -> None:
    table = docs.settings_table(_Example)
    assert "| `SCULPT_MODE` | `a` \\| `b` | `a` | Pick \\| one. |" in table
    assert "| `SCULPT_SECRET` | secret str (optional) | *unset* | Hidden. |" in table
    assert '| `SCULPT_ROOTS` | JSON list of path | `["/x"]` | Roots. |' in table
    assert "| `SCULPT_COUNT` | int (≥ 1, < 10) | `3` | Bounded. |" in table


def test_every_variable_mentioned_is_a_setting(text: str) -> None:
    known = {f"SCULPT_{name.upper()}" for name in Settings.model_fields}
    mentioned = set(re.findall(r"\bSCULPT_[A-Z0-9_]*[A-Z0-9]\b", text))
    assert mentioned <= known, f"not settings: {sorted(mentioned - known)}"


def test_every_metric_mentioned_exists(text: str) -> None:
    families = {family.name for family in Metrics().registry.collect()}
    for name in set(re.findall(r"\bsculpt_[a-z_]+", text)):
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in families, f"{name} is not a metric of sculptsvc.service.metrics"
    documented = set(re.findall(r"`(sculpt_[a-z_]+)", text))
    for family in families:
        assert any(d.startswith(family) for d in documented), f"{family} is undocumented"


def test_pool_keys_documented_are_the_pool_stats(text: str) -> None:
    (row,) = [line for line in text.splitlines() if line.startswith("| `sculpt_pool{key}`")]
    documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[3]))
    pool = WorkerPool(_job, _init, workers=0)
    stats = pool.stats()
    numeric = {
        k for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    assert documented == numeric


def _job(state: None, job: object) -> object:
    return job


def _init() -> None:
    return None


def test_relative_links_resolve(text: str) -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target = (DOC.parent / link).resolve()
        if link in PENDING_LINKS and not target.exists():
            continue
        assert target.exists(), f"broken link: {link}"


def test_files_and_commands_named_exist(text: str) -> None:
    for path in re.findall(r"`((?:docker|docs|sculptsvc)/[\w./{},-]+)`", text):
        for expanded in _expand_braces(path):
            assert (REPO / expanded).exists(), f"{expanded} named in the doc does not exist"
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"`make ([a-z-]+)`", text):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target}: no such target"


def _expand_braces(path: str) -> list[str]:
    match = re.search(r"\{([^}]+)\}", path)
    if not match:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [e for part in match.group(1).split(",") for e in _expand_braces(head + part + tail)]
