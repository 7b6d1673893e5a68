"""`sculpt mold`: a mesh file in, the two gated mold halves, the 3MF and the report out.

The adapter around the pure ``mold`` package: it reads the input (numpy for binary STL and
simple GLB, trimesh for the rest); if it is open or passes through itself it runs the
service's mesh stage on it (the repair every order gets, with its voxel-remesh fallback),
and rejects what stays unusable; then it calls
``mold.make_mold`` and writes ``mold_a.stl``, ``mold_b.stl``, ``mold.3mf`` and
``mold.json``. Errors of the mold package enter the service's error tree through its one
mapping, ``sculptsvc.errors.from_mold_error``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mold.spec import SIZE_MM_DEFAULT, SPRUE_MM_DEFAULT, WALL_MM_DEFAULT
from sculptsvc.commands._errors import exit_with
from sculptsvc.commands._files import write_atomic
from sculptsvc.errors import SculptError, UnrepairableMesh, from_mold_error

to_service_error = from_mold_error  # the one mapping lives in sculptsvc.errors

if TYPE_CHECKING:
    import numpy as np

    from mold import MoldResult, MoldSpec


@dataclass
class LoadedPart:
    """A closed part ready for ``make_mold`` and how it was obtained."""

    vertices: np.ndarray
    faces: np.ndarray
    repair: str  # none | mesh_stage
    notes: list[str] = field(default_factory=list)


def _welded(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices split only by UV or normal seams (OBJ files are full of them): trimesh's
    processing weld, from positions alone (``merge_close_vertices`` is that weld in numpy)."""
    from sculptsvc.mesh.geometry_read import merge_close_vertices

    return merge_close_vertices(vertices, faces)


def _usable(vertices: np.ndarray, faces: np.ndarray, spec: MoldSpec | None) -> bool:
    """Closed, and no face passing through another: what ``make_mold`` accepts. Checked
    at the size the mold will be made (``spec``), so ``make_mold`` reuses the check; the
    check's own manifold conversion says whether the part is closed."""
    from mold import MoldError, part_self_intersections

    try:
        return part_self_intersections(vertices, faces, spec) == 0  # the mold's own check
    except MoldError as err:
        # open, or enclosing nothing: the mesh stage may repair it; refused for another
        # reason: make_mold names it
        return not _repairable(err)


def _repairable(err: BaseException | None) -> bool:
    """Whether the mold refused the part as something the mesh stage repairs: open,
    enclosing nothing, or passing through itself."""
    from mold import PartDegenerate, PartNotManifold, PartSelfIntersecting

    return isinstance(err, PartNotManifold | PartDegenerate | PartSelfIntersecting)


def _mesh_stage(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The service's own repair: the mesh stage (closing holes, its voxel-remesh fallback)."""
    import trimesh

    from sculptsvc.mesh import process_mesh

    repaired = process_mesh(trimesh.Trimesh(vertices, faces, process=False)).mesh
    return _welded(repaired.vertices, repaired.faces)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions and triangles: numpy alone for a binary STL or a simple GLB (the same arrays
    trimesh gives, without its 0.3 s import), ``load_mesh`` for the rest."""
    import numpy as np

    from sculptsvc.mesh.geometry_read import read_geometry

    plain = read_geometry(path)
    if plain is not None:
        return plain
    from sculptsvc.mesh.io import load_mesh

    mesh = load_mesh(path, colours=False)  # UnreadableMesh names the format problem
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def read_part(path: Path) -> LoadedPart:
    """The file's positions and triangles, welded, non-finite faces dropped; not yet
    checked (``repair`` "none"). Raises ``UnrepairableMesh`` when nothing usable is read."""
    from mold.geometry import indices_out_of_range, without_non_finite

    vertices, faces = _read(path)
    if indices_out_of_range(faces, len(vertices)):
        # the mesh stage refuses these the same way (repair.check_input)
        raise UnrepairableMesh(f"{path.name}: mesh faces reference vertices that do not exist")
    vertices, faces, non_finite = without_non_finite(vertices, faces)
    notes = [f"removed {non_finite} faces with non-finite vertex coordinates"] if non_finite else []
    if non_finite and len(faces) == 0:
        raise UnrepairableMesh(f"{path.name}: every triangle has a non-finite vertex coordinate")
    vertices, faces = _welded(vertices, faces)
    return LoadedPart(vertices, faces, "none", notes)


def load_part(path: Path, *, repair: bool = True, spec: MoldSpec | None = None) -> LoadedPart:
    """Read a mesh file and return a closed, non-self-intersecting part.

    Raises ``UnrepairableMesh`` when the file is unreadable or no repair makes it usable.
    """
    part = read_part(path)
    if _usable(part.vertices, part.faces, spec):
        return part
    if not repair:
        raise _repair_off(path)
    return _repaired(path, part, spec)


def _repair_off(path: Path) -> UnrepairableMesh:
    return UnrepairableMesh(f"{path.name} is open or self-intersecting and repair is off")


def _repaired(path: Path, part: LoadedPart, spec: MoldSpec | None) -> LoadedPart:
    """The mesh stage's repair of a part the mold refuses as open or self-intersecting."""
    try:
        v, f = _mesh_stage(part.vertices, part.faces)
    except SculptError as err:
        raise UnrepairableMesh(
            f"{path.name} cannot be repaired by the mesh stage", notes=[err.code]
        ) from err
    if _usable(v, f, spec):
        return LoadedPart(v, f, "mesh_stage", part.notes)
    raise _still_unusable(path)


def _still_unusable(path: Path) -> UnrepairableMesh:
    return UnrepairableMesh(
        f"{path.name} stays unusable after repair",
        notes=["mesh_stage: still open or self-intersecting"],
    )


def mold_file(
    path: Path, spec: MoldSpec, out: Path, *, repair: bool = True
) -> tuple[LoadedPart, MoldResult]:
    """:func:`load_part` then :func:`run_mold`, with the part's check inside the mold: the
    mold counts self-intersections beside its first steps (``mold.core``), instead of this
    command counting them first and the mold waiting. A part the mold refuses as open,
    enclosing nothing or passing through itself gets the mesh stage's repair, as
    :func:`load_part` gives it; the same parts end in the same files or errors."""
    part = read_part(path)
    try:
        return part, run_mold(part, spec, out)
    except SculptError as err:
        if not _repairable(err.__cause__):
            raise
    if not repair:
        raise _repair_off(path)
    repaired = _repaired(path, part, spec)  # checked usable: the mold reuses that check
    return repaired, run_mold(repaired, spec, out)


def run_mold(part: LoadedPart, spec: MoldSpec, out: Path) -> MoldResult:
    """Make the mold and write its four files into ``out``; ``SculptError`` on failure."""
    from mold import MoldError, make_mold

    try:
        result = make_mold(part.vertices, part.faces, spec)
    except MoldError as err:
        raise from_mold_error(err) from err
    for name, data in result.files().items():
        write_atomic(out / name, data)
    return result


def _summary(result: MoldResult, part: LoadedPart, out: Path) -> str:
    r = result.report
    p = r.parting
    lines = [
        f"mold written to {out}/ ({', '.join(result.files())})",
        f"  part: {r.part.triangles} triangles, {r.part.volume_ml:.1f} ml, repair={part.repair}",
        f"  parting: {p.chosen} pull {p.pull_direction}, offset {p.plane_offset_mm:.2f} mm, "
        f"undercut A {p.undercut_fraction_a:.1%} B {p.undercut_fraction_b:.1%}",
        f"  cavity {r.cavity_volume_ml:.1f} ml, pour {r.pour_volume_ml:.1f} ml, "
        f"mold material {r.mold_material_ml:.1f} ml",
        f"  keys {len(r.keys)}, vents {len(r.vents)}, gate: "
        + ", ".join(f"{c.name}={c.measured:g}" for c in r.gate.checks),
        *(f"  note: {note}" for note in part.notes),
    ]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def mold(
        input_path: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="INPUT"),
        out: Path = typer.Option(..., "--out", "-o", help="Directory for the four output files."),
        size_mm: float = typer.Option(SIZE_MM_DEFAULT, help="Longest side of the part, mm."),
        wall_mm: float = typer.Option(WALL_MM_DEFAULT, help="Least mold wall, mm."),
        clearance_mm: float = typer.Option(0.2, help="Key clearance per side, mm."),
        keys: int = typer.Option(4, help="Registration keys."),
        key_diameter_mm: float = typer.Option(6.0, help="Key base diameter, mm."),
        sprue_diameter_mm: float | None = typer.Option(
            None,
            help=f"Sprue diameter at the cavity, mm [default: {SPRUE_MM_DEFAULT:g}, narrowed "
            "for a thinner part].",
        ),
        vents: int = typer.Option(3, help="Most air vents."),
        parting: str = typer.Option("auto", help="auto, x, y or z (pull direction)."),
        parting_offset_mm: float | None = typer.Option(None, help="Plane offset (fixed axis)."),
        print_orientation: str = typer.Option(
            "parting_down", help="Half A on the bed: parting_down or parting_up."
        ),
        repair: bool = typer.Option(True, help="Close open inputs instead of rejecting them."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Cut a two-part mold (STL halves + 3MF + report) around a closed mesh."""
        from pydantic import ValidationError

        from mold import MoldSpec
        from sculptsvc.loading import modules_loaded

        try:
            spec = MoldSpec(
                size_mm=size_mm,
                wall_mm=wall_mm,
                clearance_mm=clearance_mm,
                key_count=keys,
                key_diameter_mm=key_diameter_mm,
                sprue_diameter_mm=sprue_diameter_mm,
                vent_count=vents,
                parting=parting,  # type: ignore[arg-type]
                parting_offset_mm=parting_offset_mm,
                print_orientation=print_orientation,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise typer.BadParameter(str(exc)) from exc
        modules_loaded()  # the mold's own modules load as it needs them
        try:
            part, result = mold_file(input_path, spec, out, repair=repair)
        except SculptError as err:
            exit_with(err)
        if as_json:
            sys.stdout.write(result.report_json.decode())
            for note in part.notes:  # stdout holds the report alone
                print(json.dumps({"note": note}), file=sys.stderr)
        else:
            typer.echo(_summary(result, part, out))
