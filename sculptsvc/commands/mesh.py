"""`sculpt mesh`: a mesh file in, a clean ~20k-triangle silicone GLB (and preview) out.

    sculpt mesh INPUT --out OUT.glb [--faces 20000] [--mode multicolor|solid]
                [--color '#RRGGBB'] [--preview OUT.png] [--validate] [--json]

INPUT is OBJ, PLY, STL, GLB/glTF or OFF. A typed rejection prints its code as JSON on
stderr and exits 2 (bad input: ``mesh_unrepairable``) or 3 (processing failed).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sculptsvc.commands._errors import EXIT_FAILED, exit_with
from sculptsvc.commands._files import write_atomic
from sculptsvc.errors import SculptError
from sculptsvc.options import MODE_HELP, Mode

if TYPE_CHECKING:
    import trimesh

    from sculptsvc.mesh import MeshParams
    from sculptsvc.mesh.pipeline import UnwrapElsewhere
    from sculptsvc.settings import Settings
    from sculptsvc.workers.helper import Sending, StageHelper


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (test runners swap it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StderrLoggerFactory:
    def __call__(self, *args: object) -> _StderrLogger:
        return _StderrLogger()


def _start_uv_helper(settings: Settings) -> StageHelper | None:
    """The UV helper (``jobs.MESH_HELPER``), where a core is spare for it
    (``Settings.stage_helpers``, as a worker's)."""
    from sculptsvc.jobs import MESH_HELPER, start_helper, wants_helper

    return start_helper(settings, MESH_HELPER) if wants_helper(settings, 1) else None


def _unwrapper(helper: StageHelper | None, params: MeshParams) -> UnwrapElsewhere | None:
    if helper is None:
        return None

    import numpy as np

    def unwrap_elsewhere(mesh: trimesh.Trimesh) -> Sending:
        payload = (np.asarray(mesh.vertices), np.asarray(mesh.faces), params)
        return helper.submit_in_background("uv", payload)

    return unwrap_elsewhere


def register(app: typer.Typer) -> None:
    @app.command("mesh")
    def mesh_command(
        input_path: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="INPUT"),
        out: Path = typer.Option(..., "--out", "-o", help="Output GLB file."),
        faces: int = typer.Option(20_000, "--faces", min=100, help="Target triangle count."),
        mode: Mode = typer.Option(Mode.multicolor, "--mode", help=MODE_HELP),
        color: str | None = typer.Option(
            None, "--color", help="Order colour '#RRGGBB' (solid; multicolor without colours)."
        ),
        preview: Path | None = typer.Option(None, "--preview", help="Also write a PNG preview."),
        preview_size: int = typer.Option(512, "--preview-size", min=64, max=4096),
        validate: bool = typer.Option(
            False, "--validate", help="Run the Khronos glTF validator on the output (Node)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Repair, smooth and resample a mesh; write a silicone GLB that validates."""
        import structlog  # here, not at the top: `sculpt --help` need not load it

        from sculptsvc.logging import configure_logging
        from sculptsvc.settings import get_settings

        settings = get_settings()
        if not structlog.is_configured():  # the service configures its own; keep stdout clean
            configure_logging(settings.log_level, settings.log_format)
            structlog.configure(logger_factory=_StderrLoggerFactory())
        # first: the helper loads its modules on the other core while this one loads its own
        helper = _start_uv_helper(settings) if mode is Mode.multicolor else None

        from sculptsvc.loading import modules_loaded
        from sculptsvc.mesh import MeshParams, export_glb, load_mesh, process_mesh, render_preview
        from sculptsvc.mesh.colors import parse_hex

        modules_loaded()

        try:
            if color is not None:
                parse_hex(color)
            if validate:
                from sculptsvc.gltf_validator import prestart

                prestart()  # Node boots while the mesh stage computes
            params = MeshParams(target_faces=faces)  # other knobs: MeshParams defaults
            result = process_mesh(
                load_mesh(input_path), params, unwrap_elsewhere=_unwrapper(helper, params)
            )
            glb = export_glb(result, mode=mode.value, color_hex=color)
            png = (
                render_preview(result, mode=mode.value, color_hex=color, size=preview_size)
                if preview is not None
                else None
            )
        except SculptError as err:
            exit_with(err)

        validation = None
        if validate:
            from sculptsvc.gltf_validator import validate_glb

            validation = validate_glb(glb)
        write_atomic(out, glb)
        if png is not None and preview is not None:
            write_atomic(preview, png)

        summary = {
            "glb": str(out),
            "glb_bytes": len(glb),
            "glb_sha256": hashlib.sha256(glb).hexdigest(),
            "mode": mode.value,
            "preview": str(preview) if preview is not None else None,
            "report": result.report.model_dump(mode="json"),
            "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
            "validation": (
                {
                    "errors": validation.num_errors,
                    "warnings": validation.num_warnings,
                    "infos": validation.num_infos,
                    "hints": validation.num_hints,
                    "messages": [m.model_dump() for m in validation.messages],
                }
                if validation is not None
                else None
            ),
        }
        if as_json:
            sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        else:
            r = result.report
            typer.echo(
                f"{out}: {r.triangles} triangles, watertight={r.watertight}, shells={r.shells}, "
                f"genus={r.genus}, repair={r.repair_method}, "
                f"hausdorff={r.hausdorff_rel:.4%} of diagonal, {len(glb)} bytes"
            )
            if validation is not None:
                typer.echo(
                    f"validator: {validation.num_errors} errors, "
                    f"{validation.num_warnings} warnings, {validation.num_infos} infos, "
                    f"{validation.num_hints} hints"
                )
        if validation is not None and not validation.ok:
            raise typer.Exit(EXIT_FAILED)
