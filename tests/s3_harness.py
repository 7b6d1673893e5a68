"""Drive the real S3-compatible server of ``scripts/s3`` (s3proxy, filesystem backend) from tests.

Like ``tests/kafka_harness.py`` this only calls the project script, so a test run and a
developer at a shell use the same code path. The server is a separate JVM: stopping it is a
real outage, killing it a real crash, and its objects live in ``workdir/data`` as files (which
is how a test changes bytes "on the server" behind the service's back).

    s3 = S3Harness(tmp_path / "s3")
    s3.start()
    bucket = s3.create_bucket()                       # fresh, uniquely named
    env = s3.env()                                    # AWS_* + SCULPT_S3_ENDPOINT_URL
    s3.stop(); s3.start()                             # same port, keys and objects
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "s3"


class S3HarnessError(RuntimeError):
    """The S3 server did not do what a test needs; the message says what and where."""


@dataclass
class S3Harness:
    workdir: Path
    start_timeout_s: float = 60.0
    #: The server stops when this process exits, even if it is killed before ``stop()``.
    owner_pid: int | None = field(default_factory=os.getpid)

    @property
    def log_path(self) -> Path:
        return self.workdir / "s3proxy.log"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def start(self) -> str:
        args = ["start", str(self.workdir)]
        if self.owner_pid is not None:
            args += ["--owner-pid", str(self.owner_pid)]
        return self._script(*args, timeout=self.start_timeout_s + 30).strip().splitlines()[-1]

    def stop(self) -> None:
        if self.workdir.exists():
            self._script("stop", str(self.workdir), timeout=60)

    def kill(self) -> None:
        self._script("kill", str(self.workdir), timeout=30)

    def is_running(self) -> bool:
        result = subprocess.run(
            [str(SCRIPT), "status", str(self.workdir)], capture_output=True, check=False
        )
        return result.returncode == 0

    @property
    def endpoint(self) -> str:
        return (self.workdir / "endpoint").read_text().strip()

    def env(self) -> dict[str, str]:
        """The standard AWS variables plus ``SCULPT_S3_ENDPOINT_URL`` for this server."""
        out = self._script("env", str(self.workdir), timeout=30)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def client(self, **overrides: str) -> Any:
        """A boto3 client for this server (``overrides``: other credentials, endpoint)."""
        import boto3

        from sculptsvc.settings import Settings
        from sculptsvc.store.s3 import client_config

        env = {**self.env(), **overrides}
        settings = Settings(s3_endpoint_url=env["SCULPT_S3_ENDPOINT_URL"])
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        ).client("s3", endpoint_url=settings.s3_endpoint_url, config=client_config(settings))

    def create_bucket(self, prefix: str = "sculpt") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Object keys in ``bucket`` (the filesystem backend also lists its folders as
        ``name/`` markers: those are left out)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        )

    def object_path(self, bucket: str, key: str) -> Path:
        """Where the filesystem backend keeps ``key``'s bytes (for tamper tests)."""
        return self.data_dir / bucket / key

    def _script(self, *args: str, timeout: float) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, S3_START_TIMEOUT=str(int(self.start_timeout_s)))
        env.setdefault("PYTHON", sys.executable)  # the venv: --bucket needs boto3
        try:
            result = subprocess.run(
                [str(SCRIPT), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise S3HarnessError(f"scripts/s3 {' '.join(args)} hung; log: {self.log_path}") from exc
        if result.returncode != 0:
            raise S3HarnessError(
                f"scripts/s3 {' '.join(args)} failed (exit {result.returncode}):\n"
                f"{result.stderr.strip()}\nlog: {self.log_path}"
            )
        return result.stdout
