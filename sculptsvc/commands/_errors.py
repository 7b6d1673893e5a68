"""How every file-producing command reports a typed error: one JSON line on stderr and an
exit code a script can branch on."""

from __future__ import annotations

import json
from typing import NoReturn

import typer

from sculptsvc.errors import RejectedInput, SculptError

EXIT_REJECTED = 2  # the input cannot become what was asked for: fix the input
EXIT_FAILED = 3  # the input was fine, but no valid result came out


def exit_with(err: SculptError) -> NoReturn:
    payload = {"error": err.code, "message": err.message, "detail": err.detail}
    typer.echo(json.dumps(payload, default=str), err=True)
    raise typer.Exit(EXIT_REJECTED if isinstance(err, RejectedInput) else EXIT_FAILED)
