"""`sculpt mold`: a mesh file in, the two gated mold halves, the 3MF and the report out.

The adapter around the pure ``mold`` package: it reads the input (trimesh); if it is open or
passes through itself it tries the mesh stage, the mesh stage's voxel remesh, then pymeshlab
hole filling, and rejects what stays unusable; then it calls ``mold.make_mold`` and writes
``mold_a.stl``, ``mold_b.stl``, ``mold.3mf`` and ``mold.json``. Errors of the mold package
are mapped once, here, onto the service's error tree (:func:`to_service_error`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sculptsvc.commands._errors import exit_with
from sculptsvc.errors import (
    InvalidEvent,
    MoldFailed,
    SculptError,
    UnrepairableMesh,
)

if TYPE_CHECKING:
    import numpy as np
    import trimesh

    from mold import MoldError, MoldResult, MoldSpec


_MAX_HOLE_EDGES = 100_000  # pymeshlab close-holes limit: any hole a scan can have


@dataclass
class LoadedPart:
    """A closed part ready for ``make_mold`` and how it was obtained."""

    vertices: np.ndarray
    faces: np.ndarray
    repair: str  # none | mesh_stage | voxel_remesh | fill_holes
    notes: list[str] = field(default_factory=list)


def to_service_error(err: MoldError) -> SculptError:
    """The one mapping from ``mold`` errors to the service's (reject vs failed)."""
    from mold import InvalidSpec

    detail: dict[str, Any] = {"mold_code": err.code, **err.detail}
    if isinstance(err, InvalidSpec):
        return InvalidEvent(err.message, **detail)
    if err.rejects_input:
        return UnrepairableMesh(err.message, **detail)
    return MoldFailed(err.message, **detail)


def _is_closed(vertices: np.ndarray, faces: np.ndarray) -> bool:
    import manifold3d as m3
    import numpy as np

    solid = m3.Manifold(
        m3.Mesh64(
            vert_properties=np.ascontiguousarray(vertices, dtype=np.float64),
            tri_verts=np.ascontiguousarray(faces, dtype=np.uint64),
        )
    )
    return solid.status() == m3.Error.NoError and not solid.is_empty()


def _welded(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices split only by UV or normal seams (OBJ files are full of them)."""
    import numpy as np
    import trimesh

    welded = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=True)
    welded.merge_vertices(merge_tex=True, merge_norm=True)
    return np.asarray(welded.vertices, dtype=np.float64), np.asarray(welded.faces, dtype=np.int64)


def _fill_holes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fallback repair: fix non-manifold edges, close every hole (pymeshlab)."""
    import numpy as np
    import pymeshlab

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertices, faces))
    ms.meshing_remove_duplicate_faces()
    ms.meshing_remove_null_faces()
    ms.meshing_remove_unreferenced_vertices()
    ms.meshing_repair_non_manifold_edges()
    ms.meshing_repair_non_manifold_vertices()
    ms.meshing_close_holes(maxholesize=_MAX_HOLE_EDGES, selfintersection=False)
    ms.meshing_re_orient_faces_coherently()
    out = ms.current_mesh()
    v = np.asarray(out.vertex_matrix(), dtype=np.float64)
    f = np.asarray(out.face_matrix(), dtype=np.int64)
    # pymeshlab keeps the input's overall orientation: make the volume positive
    tris = v[f]
    signed = np.einsum("ij,ij->i", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum()
    return (v, f[:, ::-1].copy()) if signed < 0 else (v, f)


def _usable(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Closed, and no face passing through another: what ``make_mold`` accepts."""
    from mold import MoldError, part_self_intersections

    if not _is_closed(vertices, faces):
        return False
    try:
        return part_self_intersections(vertices, faces) == 0  # the mold's own check
    except MoldError:
        return True  # closed but refused for another reason: make_mold names it


def _repairs() -> list[tuple[str, Callable[[np.ndarray, np.ndarray], tuple]]]:
    """Repairs to try in turn: the mesh stage, its voxel remesh, then hole filling."""
    attempts: list[tuple[str, Callable[[np.ndarray, np.ndarray], tuple]]] = []
    try:
        import trimesh

        from sculptsvc.mesh import MeshParams, process_mesh
        from sculptsvc.mesh.remesh import voxel_remesh
    except ImportError:  # the mesh stage is not installed: hole filling only
        return [("fill_holes", _fill_holes)]

    def mesh_stage(v: np.ndarray, f: np.ndarray) -> tuple:
        return _welded(process_mesh(trimesh.Trimesh(v, f, process=False)).mesh)

    def remeshed(v: np.ndarray, f: np.ndarray) -> tuple:
        # a surface through itself has no defined inside: rebuild it from a voxel field
        params = MeshParams()
        solid = voxel_remesh(
            trimesh.Trimesh(v, f, process=False),
            params.remesh_resolution,
            params.remesh_closing_voxels,
        )
        return _welded(process_mesh(solid, params).mesh)

    attempts += [("mesh_stage", mesh_stage), ("voxel_remesh", remeshed)]
    attempts.append(("fill_holes", _fill_holes))
    return attempts


def load_part(path: Path, *, repair: bool = True) -> LoadedPart:
    """Read a mesh file and return a closed, non-self-intersecting part.

    Raises ``UnrepairableMesh`` when the file is unreadable or no repair makes it usable.
    """
    from sculptsvc.mesh.io import load_mesh

    vertices, faces = _welded(load_mesh(path))  # UnreadableMesh names the format problem
    if _usable(vertices, faces):
        return LoadedPart(vertices, faces, "none")
    if not repair:
        raise UnrepairableMesh(f"{path.name} is open or self-intersecting and repair is off")
    notes: list[str] = []
    for name, attempt in _repairs():
        try:
            v, f = attempt(vertices, faces)
        except SculptError as err:
            notes.append(f"{name}: {err.code}")
            continue
        if _usable(v, f):
            return LoadedPart(v, f, name, notes)
        notes.append(f"{name}: still open or self-intersecting")
    raise UnrepairableMesh(f"{path.name} stays unusable after repair", notes=notes)


def run_mold(part: LoadedPart, spec: MoldSpec, out: Path) -> MoldResult:
    """Make the mold and write its four files into ``out``; ``SculptError`` on failure."""
    from mold import MoldError, make_mold

    try:
        result = make_mold(part.vertices, part.faces, spec)
    except MoldError as err:
        raise to_service_error(err) from err
    out.mkdir(parents=True, exist_ok=True)
    for name, data in result.files().items():
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out / name)  # no half-written file is ever seen under its real name
    return result


def _summary(result: MoldResult, part: LoadedPart, out: Path) -> str:
    r = result.report
    p = r.parting
    lines = [
        f"mold written to {out}/ (mold_a.stl, mold_b.stl, mold.3mf, mold.json)",
        f"  part: {r.part.triangles} triangles, {r.part.volume_ml:.1f} ml, repair={part.repair}",
        f"  parting: {p.chosen} pull {p.pull_direction}, offset {p.plane_offset_mm:.2f} mm, "
        f"undercut A {p.undercut_fraction_a:.1%} B {p.undercut_fraction_b:.1%}",
        f"  cavity {r.cavity_volume_ml:.1f} ml, pour {r.pour_volume_ml:.1f} ml, "
        f"mold material {r.mold_material_ml:.1f} ml",
        f"  keys {len(r.keys)}, vents {len(r.vents)}, gate: "
        + ", ".join(f"{c.name}={c.measured:g}" for c in r.gate.checks),
    ]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command()
    def mold(
        input_path: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="INPUT"),
        out: Path = typer.Option(..., "--out", help="Directory for the four output files."),
        size_mm: float = typer.Option(80.0, help="Longest side of the part, mm."),
        wall_mm: float = typer.Option(4.0, help="Least mold wall around the cavity, mm."),
        clearance_mm: float = typer.Option(0.2, help="Key clearance per side, mm."),
        keys: int = typer.Option(4, help="Registration keys."),
        key_diameter_mm: float = typer.Option(6.0, help="Key base diameter, mm."),
        sprue_diameter_mm: float = typer.Option(6.0, help="Sprue diameter at the cavity, mm."),
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
        try:
            part = load_part(input_path, repair=repair)
            result = run_mold(part, spec, out)
        except SculptError as err:
            exit_with(err)
        if as_json:
            sys.stdout.write(result.report_json.decode())
        else:
            typer.echo(_summary(result, part, out))
