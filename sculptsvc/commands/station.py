"""`sculpt station`: the reference factory-station consumer of sculpt.molds.v1."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def station(
        group: str | None = typer.Option(None, help="Consumer group (SCULPT_STATION_GROUP_ID)."),
        station_id: str | None = typer.Option(
            None, "--station-id", help="Name in StationJob events (SCULPT_STATION_ID)."
        ),
        jobs_dir: Path | None = typer.Option(
            None, "--jobs-dir", help="Folder for job folders (SCULPT_STATION_JOBS_DIR)."
        ),
        slice_: bool | None = typer.Option(
            None, "--slice/--no-slice", help="Slice both halves to G-code (SCULPT_STATION_SLICE)."
        ),
        profile: str | None = typer.Option(
            None, help="Slicer profile name or .ini path (SCULPT_STATION_PROFILE)."
        ),
        host: str | None = typer.Option(None, help="HTTP bind address (SCULPT_HTTP_HOST)."),
        port: int | None = typer.Option(None, help="HTTP port (SCULPT_HTTP_PORT)."),
    ) -> None:
        """Turn every MoldReady into one verified job folder (and G-code), publish StationJob."""
        from sculptsvc.commands.serve import EXIT_MISCONFIGURED, check_store_or_exit, run_app
        from sculptsvc.errors import ConfigurationError
        from sculptsvc.settings import Settings
        from sculptsvc.station.app import create_station_app, station_config, worst_job_s

        overrides = {
            "station_group_id": group,
            "station_id": station_id,
            "station_jobs_dir": jobs_dir,
            "station_slice": slice_,
            "station_profile": profile,
            "http_host": host,
            "http_port": port,
        }
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        try:
            station_config(settings)  # an unknown profile fails here, naming the setting
        except ConfigurationError as err:
            typer.echo(f"sculpt station: {err.code}: {err.message}", err=True)
            raise typer.Exit(EXIT_MISCONFIGURED) from None
        check_store_or_exit(settings, "station")
        run_app(create_station_app(settings), settings, worst_job_s(settings))
