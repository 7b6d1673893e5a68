"""The ``sculpt`` command line: one sub-command per job, each in ``sculptsvc/commands/``.

Command modules import their heavy dependencies inside the command body so that
``sculpt --help`` stays fast and the core works without torch.
"""

from __future__ import annotations

import os
import sys

# One OpenBLAS thread, set before numpy loads OpenBLAS (it reads this once, at load). The
# stages make small matrix products only: a second BLAS thread never shortened an order but
# spun on the other core after each call, taking it from the preview renderer, the 3MF
# writer and the glTF validator (sculpt make: 12 % less CPU, sculpt mold: 25 % less; same
# bytes). Worker processes inherit it; an operator's own setting wins. Torch's threads
# (OpenMP, the AI backends) are not OpenBLAS's and are set per worker (workers/placement.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

from sculptsvc.commands import make, mesh, mold, replay, serve, station, store, studio
from sculptsvc.commands._exit import ONE_SHOT_COMMANDS, exit_code, exit_now
from sculptsvc.loading import pause_collection

app = typer.Typer(
    name="sculpt",
    help="Turn a customer's picture into a castable sculpture and its two-part mold.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command_module in (serve, mesh, mold, make, replay, station, store, studio):
    command_module.register(app)


def main() -> None:
    """The ``sculpt`` executable: a one-shot command loads its modules with the cyclic
    collector paused (``loading.py``) and ends without interpreter teardown
    (``commands/_exit.py``); any other starts and ends as Python does."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command in ONE_SHOT_COMMANDS:
        pause_collection()  # until the command's modules are loaded (sculptsvc/loading.py)
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if command in ONE_SHOT_COMMANDS:
        exit_now(exit_code(code))
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
