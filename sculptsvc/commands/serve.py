"""`sculpt serve`: the Kafka service, with /health, /ready and /metrics on one HTTP port."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str | None = typer.Option(None, help="HTTP bind address (SCULPT_HTTP_HOST)."),
        port: int | None = typer.Option(None, help="HTTP port (SCULPT_HTTP_PORT)."),
        workers: int | None = typer.Option(
            None, help="CPU worker processes (SCULPT_WORKERS); a GPU host runs one per GPU."
        ),
    ) -> None:
        """Consume OrderPlaced events and publish models, molds and statuses until SIGTERM."""
        import uvicorn

        from sculptsvc.service.app import create_app
        from sculptsvc.settings import Settings

        overrides = {
            k: v
            for k, v in {"http_host": host, "http_port": port, "workers": workers}.items()
            if v is not None
        }
        settings = Settings(**overrides)
        uvicorn.run(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        )
