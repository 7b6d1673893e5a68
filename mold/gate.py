"""The gate: checks every mold must pass before a byte of it leaves.

A slicer silently repairs a broken mesh and prints something else than was designed, so
these checks are the proof and the slicer only a second opinion:

- ``status``: manifold3d reports NoError and a non-empty solid for each half;
- ``single_shell``: each half is one connected solid;
- ``stl_edges``: after the STL round trip and welding by position, every edge is used by
  exactly two triangles, in opposite directions, and no triangle collapsed;
- ``no_overlap``: the closed halves share no volume;
- ``cavity_volume``: the void left when the halves close, minus the channels, equals the
  part's volume within ``cavity_volume_tolerance`` (1e-5, far inside the spec's 0.5 %);
- ``min_wall``: no point of the cavity is closer than ``wall_mm`` to the outside or to a key
  or socket;
- ``three_mf``: lib3mf reads the 3MF back in strict mode, both halves closed and oriented
  (run after the others: the 3MF is only written for geometry that passed).

Each check is a small function returning a ``GateCheck``; ``fail_on`` raises
``MoldGateFailed`` naming the first failure and keeps all measurements in the error detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import manifold3d as m3
import numpy as np

from mold.errors import MoldGateFailed
from mold.export import read_3mf_strict, stl_edge_report
from mold.features import Layout
from mold.report import GateCheck, GateInfo
from mold.spec import MoldParams, MoldSpec


@dataclass(frozen=True)
class GateInput:
    """What the gate looks at; all solids in the mold frame."""

    half_a: m3.Manifold
    half_b: m3.Manifold
    part: m3.Manifold
    part_vertices: np.ndarray  # (n, 3) mold frame
    layout: Layout
    channels: m3.Manifold  # sprue and vents clipped to the block
    stl_a: bytes
    stl_b: bytes


def check_status(inp: GateInput) -> GateCheck:
    bad = [
        f"{name}: {half.status().name}{' (empty)' if half.is_empty() else ''}"
        for name, half in (("a", inp.half_a), ("b", inp.half_b))
        if half.status() != m3.Error.NoError or half.is_empty()
    ]
    return GateCheck(
        name="status", passed=not bad, measured=len(bad), limit=0, detail="; ".join(bad)
    )


def check_single_shell(inp: GateInput) -> GateCheck:
    counts = [len(inp.half_a.decompose()), len(inp.half_b.decompose())]
    return GateCheck(
        name="single_shell",
        passed=counts == [1, 1],
        measured=max(counts),
        limit=1,
        detail=f"shells a={counts[0]} b={counts[1]}",
    )


def check_stl_edges(inp: GateInput) -> GateCheck:
    reports = {"a": stl_edge_report(inp.stl_a), "b": stl_edge_report(inp.stl_b)}
    bad = 0
    parts = []
    for name, rep in reports.items():
        defects = (
            rep.boundary_edges
            + rep.overshared_edges
            + rep.misoriented_edges
            + rep.collapsed_triangles
        )
        bad += defects + abs(rep.shells - 1)
        parts.append(
            f"{name}: {rep.triangles} tris, boundary={rep.boundary_edges} "
            f"overshared={rep.overshared_edges} misoriented={rep.misoriented_edges} "
            f"collapsed={rep.collapsed_triangles} shells={rep.shells}"
        )
    return GateCheck(
        name="stl_edges", passed=bad == 0, measured=bad, limit=0, detail="; ".join(parts)
    )


@dataclass(frozen=True)
class VoidChecks:
    overlap: GateCheck
    cavity: GateCheck
    min_wall: GateCheck
    cavity_mm3: float  # measured: the void of the closed mold that the part should fill
    channels_outside_mm3: float  # what sprue and vents add to the pour


def check_void(inp: GateInput, spec: MoldSpec, params: MoldParams) -> VoidChecks:
    """``no_overlap``, ``cavity_volume`` and ``min_wall``, measured on the closed halves.

    ``void = block - A - B`` is what stays empty when the mold is closed: one piece that
    holds the cavity with its channels, and one sealed gap per key.

    - overlap: with both halves inside the block,
      ``vol(A & B) = vol(A) + vol(B) + vol(void) - vol(block)`` exactly (checked against the
      direct intersection to 1e-10 mm^3), which saves a boolean;
    - cavity: the big piece minus the channels must hold exactly the part's volume. The spec
      allows 0.5 %; exact booleans give < 1e-12, so the default tolerance is 1e-5: mold
      material poking into the cavity, or a socket breaking into it (which merges its gap
      with the cavity), cannot hide inside half a percent. Pieces of negative volume
      (inside-out: a part that passes through itself) fail the check too;
    - min wall: from the part to the outside (box of both halves), to the key gaps found in
      the void, and to the planned keys and sockets (which covers keys without clearance).
    """
    lo, hi = inp.layout.block_min, inp.layout.block_max
    block = m3.Manifold.cube(tuple(map(float, hi - lo))).translate(tuple(map(float, lo)))
    void = m3.Manifold.batch_boolean([block, inp.half_a, inp.half_b], m3.OpType.Subtract)
    part = inp.part.volume()
    channels_outside = (inp.part + inp.channels).volume() - part

    boxes = np.array([inp.half_a.bounding_box(), inp.half_b.bounding_box()])
    slack = 1e-6 * float(np.max(hi - lo))
    inside = bool(np.all(boxes[:, :3] >= lo - slack) and np.all(boxes[:, 3:] <= hi + slack))
    if inside:
        overlap = inp.half_a.volume() + inp.half_b.volume() + void.volume() - block.volume()
    else:  # a half sticks out of the block: measure the overlap directly
        overlap = (inp.half_a ^ inp.half_b).volume()
    overlap = max(overlap, 0.0)
    overlap_check = GateCheck(
        name="no_overlap",
        passed=overlap <= params.overlap_tolerance_mm3,
        measured=overlap,
        limit=params.overlap_tolerance_mm3,
        detail="mm^3" + ("" if inside else "; a half leaves the block"),
    )

    # booleans of coincident surfaces leave zero-volume slivers (1e-14 mm^3): not voids
    pieces = sorted(((p.volume(), i, p) for i, p in enumerate(void.decompose())), reverse=True)
    main = pieces[0][0] if pieces else 0.0
    gaps = [p for vol, _, p in pieces[1:] if vol > params.sliver_volume_mm3]
    inverted = -sum(vol for vol, _, _ in pieces if vol < -params.sliver_volume_mm3)
    cavity = main - channels_outside
    error = abs(cavity - part) / part
    cavity_check = GateCheck(
        name="cavity_volume",
        passed=error <= params.cavity_volume_tolerance and inverted == 0,
        measured=error,
        limit=params.cavity_volume_tolerance,
        detail=f"cavity {cavity:.3f} mm^3 vs part {part:.3f} mm^3"
        + (f"; {inverted:.3f} mm^3 of inside-out void" if inverted else ""),
    )

    # the outside of the closed mold is the box spanned by both halves
    box_lo, box_hi = boxes[:, :3].min(axis=0), boxes[:, 3:].max(axis=0)
    v = inp.part_vertices
    outer = float(np.min(np.concatenate([v - box_lo, box_hi - v])))
    search = 2.0 * spec.wall_mm
    to_gaps = search
    if gaps:
        to_gaps = inp.part.min_gap(m3.Manifold.batch_boolean(gaps, m3.OpType.Add), search)
    to_keys = search
    if inp.layout.keys:
        planned = m3.Manifold.batch_boolean(
            [k.socket(params) for k in inp.layout.keys] + [k.male(params) for k in inp.layout.keys],
            m3.OpType.Add,
        )
        to_keys = inp.part.min_gap(planned, search)
    measured = min(outer, to_gaps, to_keys)
    wall_check = GateCheck(
        name="min_wall",
        passed=measured >= spec.wall_mm - params.wall_tolerance_mm,
        measured=measured,
        limit=spec.wall_mm,
        detail=f"to outside {outer:.3f} mm, to key gaps {to_gaps:.3f} mm ({len(gaps)} found), "
        f"to keys {to_keys:.3f} mm (searched {search:.1f})",
    )
    return VoidChecks(overlap_check, cavity_check, wall_check, cavity, channels_outside)


def check_three_mf(data: bytes, stl_triangles: tuple[int, int]) -> GateCheck:
    """lib3mf reads the package in strict mode: millimetres, two items, same triangles."""
    try:
        rep = read_3mf_strict(data)
    except Exception as exc:  # lib3mf raises its own exception type for any violation
        return GateCheck(name="three_mf", passed=False, measured=1, limit=0, detail=str(exc))
    ok = (
        rep.unit == "MilliMeter"
        and rep.build_items == 2
        and tuple(o.triangles for o in rep.objects) == stl_triangles
        and all(o.manifold_and_oriented for o in rep.objects)
    )
    return GateCheck(
        name="three_mf",
        passed=ok,
        measured=0 if ok else 1,
        limit=0,
        detail=f"unit={rep.unit} items={rep.build_items} warnings={rep.warnings} objects="
        + ",".join(f"{o.name}:{o.triangles}:{o.manifold_and_oriented}" for o in rep.objects),
    )


def fail_on(checks: list[GateCheck]) -> None:
    """Raise ``MoldGateFailed`` for the first failed check, with every result in detail."""
    failed = [c for c in checks if not c.passed]
    if failed:
        first = failed[0]
        raise MoldGateFailed(
            first.name,
            f"{first.name} failed: measured {first.measured:g}, limit {first.limit:g}"
            + (f" ({first.detail})" if first.detail else ""),
            checks=[c.model_dump() for c in checks],
        )


@dataclass(frozen=True)
class GateResult:
    info: GateInfo
    cavity_mm3: float  # measured: the void of the closed mold without its channels
    channels_outside_mm3: float


def run_gate(inp: GateInput, spec: MoldSpec, params: MoldParams) -> GateResult:
    """Run the geometry checks; raise ``MoldGateFailed`` on the first failure.

    The 3MF's own check (:func:`check_three_mf`) counts only after these pass: lib3mf
    refuses some broken meshes with an unhelpful error, so a failure here is the one named.
    """
    checks = [check_status(inp)]
    fail_on(checks)  # the rest would only repeat a broken solid's symptoms
    void = check_void(inp, spec, params)
    checks += [
        check_single_shell(inp),
        check_stl_edges(inp),
        void.overlap,
        void.cavity,
        void.min_wall,
    ]
    fail_on(checks)
    info = GateInfo(passed=True, checks=tuple(checks))
    return GateResult(info, void.cavity_mm3, void.channels_outside_mm3)
