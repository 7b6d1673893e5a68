"""`sculpt store init`: create the bucket (or directory) SCULPT_STORE_URL names, then check
that this process can write and read in it; for compose and first installs."""

from __future__ import annotations

import typer

store_app = typer.Typer(help="The artifact store (SCULPT_STORE_URL).", no_args_is_help=True)


@store_app.command("init")
def init() -> None:
    """Create the store's bucket if missing (idempotent), then run the start-up check."""
    from sculptsvc.commands.serve import EXIT_MISCONFIGURED
    from sculptsvc.errors import SculptError
    from sculptsvc.settings import Settings
    from sculptsvc.store import open_store

    try:
        store = open_store(Settings())
        created = store.create_bucket()
        store.check()
    except SculptError as err:
        typer.echo(f"sculpt store init: {err.code}: {err.message}", err=True)
        raise typer.Exit(EXIT_MISCONFIGURED) from None
    typer.echo(f"{'created' if created else 'exists'}: {store.describe()}")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
