"""`sculpt store init`: create the bucket (or directory) SCULPT_STORE_URL names and check this
process can write and read in it (compose, first installs). `sculpt store gc`: delete blobs
that are old and that no recent ledger record refers to (``sculptsvc/store/gc.py``)."""

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


@store_app.command("gc")
def gc(
    older_than_days: float = typer.Option(
        ..., "--older-than-days", min=1, help="Keep blobs made or referenced more recently."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report, delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Delete blobs older than the cut-off that no newer ledger record refers to."""
    import json
    from datetime import UTC, datetime, timedelta

    from sculptsvc.commands.serve import EXIT_MISCONFIGURED
    from sculptsvc.errors import SculptError
    from sculptsvc.settings import Settings
    from sculptsvc.store import open_store
    from sculptsvc.store.gc import collect

    try:
        store = open_store(Settings())
        report = collect(store, timedelta(days=older_than_days), datetime.now(UTC), dry_run=dry_run)
    except SculptError as err:
        typer.echo(f"sculpt store gc: {err.code}: {err.message}", err=True)
        raise typer.Exit(EXIT_MISCONFIGURED) from None
    summary = {**report.summary(), "dry_run": dry_run, "store": store.describe()}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            typer.echo(f"{key:<20} {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
