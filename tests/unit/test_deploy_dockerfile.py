"""docker/Dockerfile, its build context and its dependency locks, checked without Docker.

A COPY of a missing or ignored file, an ENV the Settings class does not know, a command
the CLI rejects, a dependency the lock does not satisfy, or a data file that does not ship in
the wheel would each surface only when someone builds or starts the image.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from typer.testing import CliRunner

from sculptsvc.cli import app
from sculptsvc.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = {
    "cpu": (REPO / "docker" / "requirements-cpu.txt", ()),
    "cuda": (REPO / "docker" / "requirements-cuda.txt", ("ai",)),
}
RUNTIME_LIBRARIES = ("libosmesa6", "libgl1", "tini")


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    logical, buffer = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    out, stage = [], ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.I)
            stage = match.group(1) if match else args
        out.append(Instruction(stage, keyword, args.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def env_pairs(args: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(args))


def copy_sources(steps: list[Instruction]) -> list[str]:
    """Sources of every COPY from the build context (not from another stage)."""
    sources = []
    for step in steps:
        if step.keyword != "COPY":
            continue
        tokens = shlex.split(step.args)
        if any(t.startswith("--from") for t in tokens):
            continue
        sources += [t for t in tokens if not t.startswith("--")][:-1]
    return sources


def test_cpu_and_cuda_targets_share_one_runtime(steps: list[Instruction]) -> None:
    stages = {s.stage: s.args for s in steps if s.keyword == "FROM"}
    assert stages["cpu"].startswith("runtime ") and stages["cuda"].startswith("runtime ")
    assert stages["build-cpu"].startswith("build ") and stages["build-cuda"].startswith("build ")
    # Multi-stage: the runtime gets the finished virtual environment, not the toolchain.
    for target in ("cpu", "cuda"):
        copies = [s.args for s in steps if s.stage == target and s.keyword == "COPY"]
        assert copies == [f"--from=build-{target} /opt/venv /opt/venv"]


def test_every_copied_file_exists_and_is_in_the_build_context(steps: list[Instruction]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the ignore file is an allow-list"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    sources = copy_sources(steps)
    assert {"pyproject.toml", "README.md", "sculptsvc", "mold"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file"
        assert any(source == a or source.startswith(a + "/") for a in allowed), (
            f"COPY {source} is excluded by {DOCKERIGNORE.name}"
        )


def test_runtime_is_non_root_and_weight_free(steps: list[Instruction]) -> None:
    users = [s.args for s in steps if s.keyword == "USER" and s.stage == "runtime"]
    assert users and not users[-1].startswith(("root", "0"))
    text = DOCKERFILE.read_text()
    assert not re.search(r"\.(ckpt|safetensors|bin|pt)\b", text), "weights must not be baked in"
    assert "/models" in text


def test_runtime_has_the_system_libraries(steps: list[Instruction]) -> None:
    runs = " ".join(s.args for s in steps if s.stage == "runtime" and s.keyword == "RUN")
    for package in RUNTIME_LIBRARIES:
        assert re.search(rf"\b{re.escape(package)}\b", runs), f"{package} is not installed"
    env = {}
    for step in steps:
        if step.stage == "runtime" and step.keyword == "ENV":
            env.update(env_pairs(step.args))
    assert env["PYOPENGL_PLATFORM"] == "osmesa"


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_image_environment_is_valid_settings(
    steps: list[Instruction], target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = {}
    for step in steps:
        if step.stage in ("runtime", target) and step.keyword == "ENV":
            env.update(env_pairs(step.args))
    known = {f"SCULPT_{name.upper()}" for name in Settings.model_fields}
    sculpt_vars = {k: v for k, v in env.items() if k.startswith("SCULPT_")}
    assert set(sculpt_vars) <= known, f"not settings: {sorted(set(sculpt_vars) - known)}"
    for key, value in sculpt_vars.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.http_host == "0.0.0.0"
    assert str(settings.artifact_root) == "/var/lib/sculpt/artifacts"
    assert settings.device == target
    exposed = [s.args for s in steps if s.keyword == "EXPOSE"]
    assert exposed == [str(settings.http_port)]


def test_entrypoint_and_command_are_accepted_by_the_cli(steps: list[Instruction]) -> None:
    (entrypoint,) = [json.loads(s.args) for s in steps if s.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(s.args) for s in steps if s.keyword == "CMD"]
    assert entrypoint[:2] == ["tini", "--"]
    assert PYPROJECT["project"]["scripts"][entrypoint[2]] == "sculptsvc.cli:main"
    result = CliRunner().invoke(app, [*entrypoint[3:], *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--workers" in result.output


def test_healthcheck_probes_health(steps: list[Instruction]) -> None:
    (check,) = [s.args for s in steps if s.keyword == "HEALTHCHECK"]
    assert check.rstrip().endswith('CMD ["sculpt-healthcheck", "/health"]')
    copies = [s.args for s in steps if s.keyword == "COPY" and "healthcheck" in s.args]
    assert copies and copies[0].split()[-1] == "/usr/local/bin/sculpt-healthcheck"


def locked_versions(path: Path) -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", path.read_text(), re.M)
    return {canonicalize_name(name): Version(version) for name, version in pins}


@pytest.mark.parametrize("variant", sorted(LOCKS))
def test_lock_satisfies_pyproject(variant: str) -> None:
    """Fails when pyproject.toml changed without `make docker-lock`."""
    path, extras = LOCKS[variant]
    locked = locked_versions(path)
    wanted = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        wanted += PYPROJECT["project"]["optional-dependencies"][extra]
    overrides = (REPO / "requirements" / "overrides.txt").read_text().splitlines()
    wanted += [line for line in overrides if line.strip() and not line.startswith("#")]
    stale = []
    for text in wanted:
        req = Requirement(text)
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            stale.append(f"{text} (locked: {version})")
    assert not stale, f"{path.name} is stale, run `make docker-lock`: {stale}"
    if not extras:
        assert "torch" not in locked, "the CPU image must not pull torch"


@pytest.mark.parametrize("variant", sorted(LOCKS))
def test_every_locked_package_is_hashed(variant: str) -> None:
    text = LOCKS[variant][0].read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text.split("\n", 2)[-1])
    pinned = [b for b in blocks if "==" in b.splitlines()[0]]
    assert pinned and all("--hash=sha256:" in b for b in pinned)


def test_runtime_data_files_ship_in_the_wheel() -> None:
    """Non-Python files under the packages must match [tool.setuptools.package-data]."""
    package_data = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    missing = []
    for root in ("sculptsvc", "mold"):
        for path in (REPO / root).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            package_dir = path.parent
            package = ".".join(package_dir.relative_to(REPO).parts)
            patterns = package_data.get("*", []) + package_data.get(package, [])
            if not any(fnmatch.fnmatch(path.name, p) for p in patterns):
                missing.append(str(path.relative_to(REPO)))
    assert not missing, f"add to [tool.setuptools.package-data]: {missing}"


CPU_IMAGE_PROBE = """
import sys
from importlib.abc import MetaPathFinder

class NoAI(MetaPathFinder):
    # The cpu image's lock has no torch/diffusers/transformers: make them unimportable.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "diffusers", "transformers", "accelerate"}:
            raise ModuleNotFoundError(f"No module named {name!r} (cpu image)")
        return None

sys.meta_path.insert(0, NoAI())
from sculptsvc.ai.backends import load_reconstructor, load_stylizer
from sculptsvc.cli import app
from sculptsvc.service.app import create_app
from sculptsvc.service.jobs import init_worker, run_order_job
import sculptsvc.pipeline
from sculptsvc.settings import Settings

settings = Settings(device="cpu", stylizer="classic", reconstructor="classic")
create_app(settings)
print(type(load_stylizer(settings)).__name__, type(load_reconstructor(settings)).__name__)
"""


def test_cpu_image_runs_the_classic_service_without_torch() -> None:
    """The cpu target installs no `ai` extra: the classic path must not import torch."""
    done = subprocess.run(
        [sys.executable, "-c", CPU_IMAGE_PROBE],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ClassicStylizer", "ClassicReconstructor"]


def test_images_and_bootstrap_compile_bytecode_at_install(steps: list[Instruction]) -> None:
    """The runtime sets PYTHONDONTWRITEBYTECODE: without .pyc from the install, every
    process would compile each module it imports (seconds per start)."""
    build_env: dict[str, str] = {}
    for step in steps:
        if step.stage == "build" and step.keyword == "ENV":
            build_env.update(env_pairs(step.args))
    assert build_env.get("UV_COMPILE_BYTECODE") == "1"
    stages = {s.stage for s in steps if s.keyword == "RUN" and "uv pip install" in s.args}
    assert {"build-cpu", "build-cuda"} <= stages  # both inherit the build stage's ENV
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    assert "--compile-bytecode" in bootstrap
    assert "compileall" in bootstrap  # the editable project's own modules
