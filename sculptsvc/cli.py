"""The ``sculpt`` command line: one sub-command per job, each in ``sculptsvc/commands/``.

Command modules import their heavy dependencies inside the command body so that
``sculpt --help`` stays fast and the core works without torch.
"""

from __future__ import annotations

import typer

from sculptsvc.commands import make, mesh, mold, replay, serve, station, store, studio

app = typer.Typer(
    name="sculpt",
    help="Turn a customer's picture into a castable sculpture and its two-part mold.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command_module in (serve, mesh, mold, make, replay, station, store, studio):
    command_module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
