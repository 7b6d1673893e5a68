"""`sculpt studio`: the Studio's web pages, in a process of their own."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def studio() -> None:
        """Web pages: design a sculpture, inspect orders, replay and reproduce them.

        Binds SCULPT_STUDIO_HOST:SCULPT_STUDIO_PORT (loopback by default); QA actions need
        SCULPT_STUDIO_TOKENS. Independent of `sculpt serve`: stopping one never stops the other.
        """
        import uvicorn

        from sculptsvc.settings import Settings
        from sculptsvc.studio.app import create_app

        settings = Settings()
        uvicorn.run(
            create_app(settings),
            host=settings.studio_host,
            port=settings.studio_port,
            log_level=settings.log_level.lower(),
            access_log=False,
            server_header=False,
        )
