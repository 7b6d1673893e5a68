"""Start-up refuses a broken model configuration before it touches Kafka or a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from sculptsvc.errors import ModelUnavailable
from sculptsvc.service.app import create_app
from sculptsvc.settings import Settings


async def test_missing_weights_fail_at_start_up_not_at_the_first_order(tmp_path: Path) -> None:
    settings = Settings(
        reconstructor="triposr",
        triposr_model_dir=tmp_path / "nowhere",
        kafka_bootstrap_servers="127.0.0.1:9",  # never reached
        artifact_root=tmp_path,
    )
    app = create_app(settings)
    with pytest.raises(ModelUnavailable, match="nowhere"):
        async with app.start_lifespan_context():
            pass
