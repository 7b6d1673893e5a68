"""`sculpt serve`: the Kafka service, with /health, /ready and /metrics on one HTTP port."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sculptsvc.settings import Settings

EXIT_MISCONFIGURED = 2


def run_app(app: object, settings: Settings, graceful_timeout_s: float) -> None:
    """Serve an ASGI FastStream app (its consumer and /health, /ready) until SIGTERM."""
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(graceful_timeout_s),
    )


def check_store_or_exit(settings: Settings, command: str) -> None:
    """Before anything is consumed: a store that cannot work stops the command with one
    line naming the setting (no traceback; credentials never appear in it)."""
    from sculptsvc.errors import SculptError
    from sculptsvc.store import open_store

    try:
        open_store(settings).check()
    except SculptError as err:
        typer.echo(f"sculpt {command}: {err.code}: {err.message}", err=True)
        raise typer.Exit(EXIT_MISCONFIGURED) from None


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
        from sculptsvc.service.app import create_app
        from sculptsvc.settings import Settings

        overrides = {
            k: v
            for k, v in {"http_host": host, "http_port": port, "workers": workers}.items()
            if v is not None
        }
        settings = Settings(**overrides)
        check_store_or_exit(settings, "serve")
        run_app(create_app(settings), settings, settings.graceful_timeout_s)
