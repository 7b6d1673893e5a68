"""``make_mold``: part arrays + spec in, two gated mold halves (STL, 3MF) + report out.

Steps (each a plain function in its own module):
 1. validate the arrays, build the solid, merge overlapping shells  (geometry)
 2. scale the longest side to ``size_mm`` (unless the part is in mm already), centre it;
    count self-intersections on a thread beside steps 3-7 (refused first, if any)
 3. rank pull directions and parting planes                          (parting)
 4. move the part into the mold frame, lay out block/keys/channels    (features)
 5. booleans: block - part - channels, split, + keys on B, - sockets on A
 6. place each half for printing, export canonical STLs and the 3MF   (export)
 7. gate: nothing leaves unless every check passes                    (gate)
    steps 4-7 run per parting, best-ranked first, until one passes every gate
 8. report (rounded floats, stable order)                             (report)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import manifold3d as m3
import numpy as np

from mold import files
from mold.errors import (
    MoldGateFailed,
    MoldGenerationFailed,
    PartDegenerate,
    PartDisconnected,
    PartTooThin,
    SprueDoesNotFit,
)
from mold.export import MeshObject, stl_bytes, three_mf_bytes
from mold.features import Channel, Layout, plan_layout
from mold.gate import GateInput, GateResult, check_three_mf, fail_on, run_gate
from mold.geometry import (
    Affine,
    TriMesh,
    affine,
    apply_affine,
    canonical_float32,
    from_manifold,
    raise_self_intersecting,
    self_intersecting_faces,
    self_intersecting_mask,
    to_manifold,
    transform_manifold,
    validate_arrays,
)
from mold.parting import Parting, choose_parting, parting_for, ranked_candidates
from mold.report import (
    CandidateInfo,
    ChannelInfo,
    GateCheck,
    GateInfo,
    HalfInfo,
    KeyInfo,
    MoldReport,
    PartInfo,
    PartingAttempt,
    PartingInfo,
    software_versions,
)
from mold.spec import MoldParams, MoldSpec

MM3_PER_ML = 1000.0
_MIN_BODY_FRACTION = 1e-3  # bodies below this share of the largest are scan debris
_FLIP_X = np.diag([1.0, -1.0, -1.0])  # half turn about x: turns a half upside down


@dataclass(frozen=True)
class MoldResult:
    """The gated mold. STLs are binary, in print orientation, on z = 0, in mm."""

    stl_a: bytes
    stl_b: bytes
    three_mf: bytes
    report: MoldReport

    @property
    def report_json(self) -> bytes:
        return (self.report.model_dump_json(indent=2) + "\n").encode()

    def files(self) -> dict[str, bytes]:
        """File name -> bytes, in the order the CLI writes them."""
        return {
            files.HALF_A: self.stl_a,
            files.HALF_B: self.stl_b,
            files.THREE_MF: self.three_mf,
            files.REPORT: self.report_json,
        }


@dataclass(frozen=True)
class _Part:
    mesh: TriMesh  # part frame: scaled to size, bounding box centred on the origin
    solid: m3.Manifold
    input_to_part: Affine
    bodies_merged: int
    bodies_dropped: int


def _round(x: float, decimals: int) -> float:
    return round(float(x), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def _vec(v: np.ndarray, decimals: int) -> tuple[float, float, float]:
    return (_round(v[0], decimals), _round(v[1], decimals), _round(v[2], decimals))


def _matrix(m: Affine, decimals: int) -> tuple[tuple[float, float, float, float], ...]:
    return tuple(tuple(_round(x, decimals + 4) for x in row) for row in m)  # type: ignore[misc]


def scaled_part(
    vertices: np.ndarray, faces: np.ndarray, spec: MoldSpec, params: MoldParams
) -> _Part:
    """Validate, merge overlapping shells, scale the longest side to ``size_mm`` (kept
    as given when ``size_mm`` is None), centre.

    No self-intersection check yet: see :func:`part_self_intersections`.
    """
    mesh = validate_arrays(vertices, faces)
    # Built about the centre of its box: manifold3d's tolerance grows with the largest
    # coordinate and transforms keep it, so a scan kept in world coordinates (a 5 cm part at
    # UTM 6.8e6 m) would carry a 6 um tolerance into the mm frame and cut slivers at the plane.
    origin = 0.5 * (mesh.vertices.min(axis=0) + mesh.vertices.max(axis=0))
    solid = to_manifold(TriMesh(mesh.vertices - origin, mesh.faces))
    bodies = solid.decompose()
    merged = len(bodies)
    if merged > 1:  # overlapping shells pass status() yet count their overlap twice
        solid = m3.Manifold.batch_boolean(bodies, m3.OpType.Add)
        bodies = solid.decompose()
    volumes = np.array([b.volume() for b in bodies])
    if len(volumes) == 0 or volumes.max() <= 0:
        raise PartDegenerate("the part encloses no volume")
    keep = volumes >= _MIN_BODY_FRACTION * volumes.max()
    dropped = int((~keep).sum())
    if keep.sum() > 1:
        raise PartDisconnected(
            f"the part is {int(keep.sum())} separate bodies; one pour cannot fill them",
            body_volumes=sorted((float(x) for x in volumes[keep]), reverse=True),
        )
    if dropped:
        solid = bodies[int(np.argmax(volumes))]
    lo = np.array(solid.bounding_box()[:3])
    hi = np.array(solid.bounding_box()[3:])
    longest = float((hi - lo).max())
    if not longest > 0:
        raise PartDegenerate("the part has no extent")
    scale = 1.0 if spec.size_mm is None else spec.size_mm / longest
    to_part = affine(np.eye(3) * scale, -scale * 0.5 * (lo + hi))
    solid = transform_manifold(solid, to_part)
    from_input = to_part @ affine(translation=-origin)
    return _Part(from_manifold(solid), solid, from_input, merged, dropped)


class _CheckedParts:
    """The last part :func:`part_self_intersections` prepared and checked, by a digest of
    exactly what it was given: the mesh stage (and ``sculpt mold``) check a part before
    they hand it to :func:`make_mold`, which would otherwise convert, scale and check the
    same coordinates again. A hit is the same check on the same bytes; anything else (other
    coordinates, faces, size or body threshold) misses and is checked afresh. One entry:
    it is the part about to be molded, and a large part is hundreds of MB."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[bytes, _Part, int] | None = None

    @staticmethod
    def key(vertices: np.ndarray, faces: np.ndarray, spec: MoldSpec) -> bytes:
        digest = hashlib.blake2b(digest_size=32)
        for array in (
            np.ascontiguousarray(vertices, dtype=np.float64),
            np.ascontiguousarray(faces, dtype=np.int64),
        ):
            digest.update(repr(array.shape).encode())
            digest.update(memoryview(array).cast("B"))
        digest.update(repr((spec.size_mm, _MIN_BODY_FRACTION)).encode())
        return digest.digest()

    def get(self, key: bytes) -> tuple[_Part, int] | None:
        with self._lock:
            if self._entry is None or self._entry[0] != key:
                return None
            return self._entry[1], self._entry[2]

    def put(self, key: bytes, part: _Part, crossing_faces: int) -> None:
        for array in (part.mesh.vertices, part.mesh.faces):
            array.setflags(write=False)  # shared by every later user of the entry
        with self._lock:
            self._entry = (key, part, crossing_faces)


_checked_parts = _CheckedParts()


def part_self_intersections(
    vertices: np.ndarray,
    faces: np.ndarray,
    spec: MoldSpec | None = None,
    params: MoldParams | None = None,
) -> int:
    """Faces of the part that pass through another face, counted as :func:`make_mold`
    counts them before it refuses a part: after the shells are united (overlapping shells
    are fine, a shell through itself is not), at the mold's scale (longest side
    ``spec.size_mm``, or as given when it is None), on exactly the coordinates given. The
    mesh stage calls this on the float32 positions its GLB stores, so what it hands on is
    what the mold accepts. :func:`make_mold` on the same arrays reuses this result.
    """
    spec = spec or MoldSpec()
    params = params or MoldParams()
    key = _checked_parts.key(vertices, faces, spec)
    known = _checked_parts.get(key)
    if known is not None:
        return known[1]
    part = scaled_part(vertices, faces, spec, params)
    crossing = self_intersecting_faces(part.mesh)
    _checked_parts.put(key, part, crossing)
    return crossing


def crossing_triangles(
    vertices: np.ndarray,
    faces: np.ndarray,
    spec: MoldSpec | None = None,
    params: MoldParams | None = None,
) -> np.ndarray:
    """``(k, 3, 3)``: the faces :func:`part_self_intersections` counts as crossing, as
    triangles in the input's own frame. A repair aimed at them aims at what the check
    refuses: selected in any other frame (unscaled, uncentred), rounding picks other faces
    or none at all."""
    spec = spec or MoldSpec()
    params = params or MoldParams()
    known = _checked_parts.get(_checked_parts.key(vertices, faces, spec))
    part = known[0] if known is not None else scaled_part(vertices, faces, spec, params)
    crossing = part.mesh.vertices[part.mesh.faces[self_intersecting_mask(part.mesh)]]
    to_input = np.linalg.inv(part.input_to_part)
    return crossing @ to_input[:3, :3].T + to_input[:3, 3]


def prepare_part(
    vertices: np.ndarray, faces: np.ndarray, spec: MoldSpec, params: MoldParams
) -> _Part:
    """:func:`scaled_part`, then refuse a surface through itself (in the part frame, mm);
    both come from :func:`part_self_intersections` when it just checked these arrays."""
    part, crossing = _part_and_pending_check(vertices, faces, spec, params, on_thread=False)
    crossing.refuse()
    return part


class _PendingCrossings:
    """The self-intersection count of a part, known or still being counted on a thread.

    MeshLab's test (most of a large part's check: 6 s of a 1.3M-triangle scan's 25 s mold)
    releases the GIL, so it runs beside the mold's next steps (thickness, parting search,
    booleans, gate), which it does not change; :func:`make_mold` asks for the count before
    it returns or raises anything else, so a part through itself is refused as before."""

    def __init__(self, params: MoldParams, known: int | None = None) -> None:
        self._check = params.check_self_intersections
        self._known = known
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @classmethod
    def counting(cls, part: _Part, params: MoldParams, *, on_thread: bool) -> _PendingCrossings:
        pending = cls(params)
        if not pending._check:
            return pending
        if not on_thread:  # the caller waits for it at once: no thread to start
            pending._known = self_intersecting_faces(part.mesh)
            return pending

        def count() -> None:
            try:
                pending._known = self_intersecting_faces(part.mesh)
            except BaseException as exc:  # raised where the count is asked for
                pending._error = exc

        import pymeshlab  # noqa: F401  (first loaded by the calling thread: see jobs.py)

        pending._thread = threading.Thread(target=count, name="mold-self-intersections")
        pending._thread.start()
        return pending

    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def refuse(self) -> None:
        """Wait for the count; raise ``PartSelfIntersecting`` if any face crosses."""
        if not self._check:
            return
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if self._known:
            raise_self_intersecting(self._known)

    def refuse_if_counted(self) -> None:
        """:meth:`refuse` if the count is in: a part through itself stops the mold early."""
        if self.done():
            self.refuse()


def _part_and_pending_check(
    vertices: np.ndarray,
    faces: np.ndarray,
    spec: MoldSpec,
    params: MoldParams,
    *,
    on_thread: bool = True,
) -> tuple[_Part, _PendingCrossings]:
    """The prepared part and its self-intersection count: remembered from
    :func:`part_self_intersections` on these very arrays, else counting on a thread."""
    key = _checked_parts.key(vertices, faces, spec)
    known = _checked_parts.get(key)
    if known is not None:
        part, crossing = known
        return part, _PendingCrossings(params, crossing)
    part = scaled_part(vertices, faces, spec, params)
    return part, _PendingCrossings.counting(part, params, on_thread=on_thread)


def check_thickness(solid: m3.Manifold, params: MoldParams) -> None:
    """Refuse a part thinner on average than a pour fills, before any mold is cut.

    Twice the volume over the surface area is a plate's thickness and two thirds of a
    ball's radius; only a part that is a sheet nearly everywhere falls below the limit
    (a 0.1 mm build plate scaled to 80 mm made a mold with an empty 0.0 ml cavity that
    passed every other check). Thin details on a solid body do not lower it much.
    """
    area = solid.surface_area()
    mean = 2.0 * solid.volume() / area if area > 0 else 0.0
    if mean < params.min_mean_thickness_mm:
        raise PartTooThin(
            f"the part is {mean:.2f} mm thick on average at this size, below the "
            f"{params.min_mean_thickness_mm:g} mm a pour fills; make it thicker or larger",
            mean_thickness_mm=round(mean, 4),
            limit_mm=params.min_mean_thickness_mm,
        )


def build_halves(
    part: m3.Manifold, layout: Layout, params: MoldParams
) -> tuple[m3.Manifold, m3.Manifold]:
    """Block minus part and channels, split at z = 0; male keys on B, sockets in A."""
    lo, hi = layout.block_min, layout.block_max
    block = m3.Manifold.cube(tuple(map(float, hi - lo))).translate(tuple(map(float, lo)))
    tools = [part, *(c.solid(params) for c in layout.channels)]
    body = m3.Manifold.batch_boolean([block, *tools], m3.OpType.Subtract)
    half_a, half_b = body.split_by_plane((0.0, 0.0, 1.0), 0.0)
    if layout.keys:
        half_b = m3.Manifold.batch_boolean(
            [half_b, *(k.male(params) for k in layout.keys)], m3.OpType.Add
        )
        half_a = m3.Manifold.batch_boolean(
            [half_a, *(k.socket(params) for k in layout.keys)], m3.OpType.Subtract
        )
    return _without_slivers(half_a, params), _without_slivers(half_b, params)


def _without_slivers(half: m3.Manifold, params: MoldParams) -> m3.Manifold:
    """Drop the specks booleans leave where a channel grazes the cavity (zero-volume shells,
    sub-0.1 mm^3 wedges): debris no printer resolves, not loose mold pieces, which still
    fail the single-shell gate."""
    pieces = half.decompose()
    if len(pieces) < 2:
        return half
    kept = [p for p in pieces if p.volume() > params.fleck_volume_mm3]
    if len(kept) == len(pieces) or not kept:
        return half
    return kept[0] if len(kept) == 1 else m3.Manifold.batch_boolean(kept, m3.OpType.Add)


def print_placements(layout: Layout, spec: MoldSpec) -> tuple[Affine, Affine]:
    """Mold frame -> print frame for A and B: each on z = 0, centred on the z axis.

    B carries the male keys, so it lies parting face up. A lies as the spec says: parting
    face down (flat sealing face on the bed) or up (cavity opens upwards, support-free).
    """
    top, bottom = float(layout.block_max[2]), float(layout.block_min[2])
    if spec.print_orientation == "parting_down":
        to_a = affine()
    else:
        to_a = affine(_FLIP_X, np.array([0.0, 0.0, top]))
    to_b = affine(translation=np.array([0.0, 0.0, -bottom]))
    return to_a, to_b


def _channel_info(c: Channel, d: int) -> ChannelInfo:
    return ChannelInfo(
        kind=c.kind,
        cavity_point=_vec(c.point, d),
        top=_vec(np.array([c.point[0], c.point[1], c.top_z]), d),
        diameter_bottom_mm=_round(2 * c.radius_bottom, d),
        diameter_top_mm=_round(2 * c.radius_top, d),
    )


# what decides the mold's bytes and its gate (pymeshlab: the self-intersection check)
MOLD_SOFTWARE = ("manifold3d", "lib3mf", "numpy", "pymeshlab")


@dataclass(frozen=True)
class MoldGeometry:
    """Steps 1-5: the part and both halves in the mold frame, before anything is exported."""

    part: _Part
    parting: Parting
    to_mold: Affine  # part frame -> mold frame
    solid: m3.Manifold  # the part (= cavity) in the mold frame
    mesh: TriMesh  # same, as arrays
    layout: Layout
    half_a: m3.Manifold
    half_b: m3.Manifold


@dataclass(frozen=True)
class ExportedHalves:
    """Step 6: canonical float32 meshes in print placement and their STL bytes."""

    to_a: Affine  # mold frame -> print frame
    to_b: Affine
    va: np.ndarray
    fa: np.ndarray
    vb: np.ndarray
    fb: np.ndarray
    stl_a: bytes
    stl_b: bytes


def geometry_for(part: _Part, parting: Parting, spec: MoldSpec, params: MoldParams) -> MoldGeometry:
    """Mold frame, layout and booleans (steps 4-5) for one parting of the prepared part."""
    # 4. mold frame: pull direction -> +z, plane -> z = 0, bounding box centred on the z axis
    rotated = part.mesh.vertices @ parting.rotation.T
    centre_xy = 0.5 * (rotated.min(axis=0) + rotated.max(axis=0))
    to_mold = affine(parting.rotation, -np.array([centre_xy[0], centre_xy[1], parting.level_mm]))
    solid = transform_manifold(part.solid, to_mold)
    mesh = TriMesh(apply_affine(to_mold, part.mesh.vertices), part.mesh.faces)
    layout = plan_layout(mesh, solid, spec, params)
    # 5. booleans
    half_a, half_b = build_halves(solid, layout, params)
    return MoldGeometry(part, parting, to_mold, solid, mesh, layout, half_a, half_b)


def build_geometry(
    vertices: np.ndarray, faces: np.ndarray, spec: MoldSpec, params: MoldParams
) -> MoldGeometry:
    """Part, best-ranked parting, layout and booleans (steps 1-5), no fallback."""
    part = prepare_part(vertices, faces, spec, params)
    return geometry_for(part, choose_parting(part.mesh, part.solid, spec, params), spec, params)


def export_halves(geom: MoldGeometry, spec: MoldSpec) -> ExportedHalves:
    """Place each half for printing and write its STL (step 6)."""
    to_a, to_b = print_placements(geom.layout, spec)
    va, fa = canonical_float32(from_manifold(transform_manifold(geom.half_a, to_a)))
    vb, fb = canonical_float32(from_manifold(transform_manifold(geom.half_b, to_b)))
    stl_a = stl_bytes(va, fa, "sculptsvc mold half A (female, pour side) mm")
    stl_b = stl_bytes(vb, fb, "sculptsvc mold half B (male keys) mm")
    return ExportedHalves(to_a, to_b, va, fa, vb, fb, stl_a, stl_b)


def channels_in_block(geom: MoldGeometry, params: MoldParams) -> m3.Manifold:
    """Sprue and vents as cut into the block (their tools overshoot the top face)."""
    lo, hi = geom.layout.block_min, geom.layout.block_max
    block = m3.Manifold.cube(tuple(map(float, hi - lo))).translate(tuple(map(float, lo)))
    tools = [c.solid(params) for c in geom.layout.channels]
    return m3.Manifold.batch_boolean(tools, m3.OpType.Add) ^ block


def gate_input(geom: MoldGeometry, out: ExportedHalves, params: MoldParams) -> GateInput:
    return GateInput(
        geom.half_a,
        geom.half_b,
        geom.solid,
        geom.mesh.vertices,
        geom.layout,
        channels_in_block(geom, params),
        out.stl_a,
        out.stl_b,
    )


def write_three_mf(out: ExportedHalves, params: MoldParams) -> bytes:
    """Both halves side by side in one 3MF (lib3mf), as printed."""
    width_a = float(out.va[:, 0].max() - out.va[:, 0].min())
    width_b = float(out.vb[:, 0].max() - out.vb[:, 0].min())
    shift = 0.5 * (width_a + width_b) + params.layout_gap_mm
    try:
        return three_mf_bytes(
            [
                MeshObject("mold_a", out.va, out.fa, (-0.5 * shift, 0.0, 0.0)),
                MeshObject("mold_b", out.vb, out.fb, (0.5 * shift, 0.0, 0.0)),
            ],
            params.three_mf_decimals,
        )
    except Exception as exc:  # lib3mf's own exception type; nothing may leave unchecked
        raise MoldGateFailed("three_mf", f"lib3mf refused to write the 3MF: {exc}") from exc


def make_mold(
    vertices: np.ndarray,
    faces: np.ndarray,
    spec: MoldSpec | None = None,
    params: MoldParams | None = None,
) -> MoldResult:
    """Two-part mold for a closed part ``vertices (n, 3)``, ``faces (m, 3)`` (any unit).

    The part is scaled so its longest bounding-box side is ``spec.size_mm`` (``None``: the
    part is in millimetres already and keeps its size). Raises an
    ``InvalidPart``/``InvalidSpec`` subclass for input that cannot be molded and
    ``MoldGenerationFailed`` (``MoldGateFailed``, ``KeysDoNotFit``) when no gated mold came out.
    """
    spec = spec or MoldSpec()
    params = params or MoldParams()
    part, crossing = _part_and_pending_check(vertices, faces, spec, params)  # steps 1-2
    try:
        result = _first_gated_mold(part, crossing, (len(vertices), len(faces)), spec, params)
    except Exception:
        crossing.refuse()  # a part through itself is refused as that, as if checked first
        raise
    crossing.refuse()
    return result


_PartingRefused = MoldGenerationFailed | SprueDoesNotFit
_PER_PARTING = (MoldGenerationFailed, SprueDoesNotFit)
"""What one parting can fail with while another may pass: a gate, keys that do not fit
around its cavity, a sprue that does not fit the part across its pull (a plate pulled
along its length is 2 mm across; pulled through its face it has room)."""


def _first_gated_mold(
    part: _Part,
    crossing: _PendingCrossings,
    input_size: tuple[int, int],
    spec: MoldSpec,
    params: MoldParams,
) -> MoldResult:
    """Steps 3-8 for the prepared part, while its self-intersection count may still run."""
    check_thickness(part.solid, params)
    # 3. partings best first; the first that passes every gate is kept
    order, scores = ranked_candidates(part.mesh, part.solid, spec, params)
    tried: list[tuple[Parting, _PartingRefused | None]] = []
    for candidate in order[: params.parting_fallback_candidates]:
        crossing.refuse_if_counted()
        parting = parting_for(candidate, part.mesh, part.solid, params, scores)
        try:
            geom, out, gated, gate, three_mf = _gated_mold(part, parting, spec, params)
        except _PER_PARTING as err:  # a gate, keys or a sprue that do not fit: try the next
            tried.append((parting, err))
            continue
        tried.append((parting, None))
        report = build_report(geom, out, gated, gate, three_mf, input_size, spec, params, tried)
        return MoldResult(stl_a=out.stl_a, stl_b=out.stl_b, three_mf=three_mf, report=report)
    raise _no_parting_passes(tried, params)


def _gated_mold(
    part: _Part, parting: Parting, spec: MoldSpec, params: MoldParams
) -> tuple[MoldGeometry, ExportedHalves, GateResult, GateInfo, bytes]:
    """Steps 4-7 for one parting; raises ``MoldGenerationFailed`` when a gate refuses it."""
    geom = geometry_for(part, parting, spec, params)  # steps 4-5
    out = export_halves(geom, spec)  # step 6
    # 7. gate the geometry; write the 3MF of the halves and read it back meanwhile, on a
    # second thread (lib3mf runs through ctypes, which releases the GIL). A failed gate
    # still wins over a refused 3MF, as if the 3MF were written after it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mold-3mf") as pool:
        packaged = pool.submit(_checked_three_mf, out, params)
        gated = run_gate(gate_input(geom, out, params), spec, params)
        three_mf, three_mf_check = packaged.result()
    checks = [*gated.info.checks, three_mf_check]
    fail_on(checks)
    return geom, out, gated, GateInfo(passed=True, checks=tuple(checks)), three_mf


def _checked_three_mf(out: ExportedHalves, params: MoldParams) -> tuple[bytes, GateCheck]:
    """The 3MF of both halves and lib3mf's strict reading of it."""
    three_mf = write_three_mf(out, params)
    return three_mf, check_three_mf(three_mf, (len(out.fa), len(out.fb)))


def _no_parting_passes(
    tried: Sequence[tuple[Parting, _PartingRefused | None]], params: MoldParams
) -> _PartingRefused:
    """The error naming the best-ranked failing parting, with every attempt in detail."""
    best, first = tried[0]
    assert first is not None
    d = params.report_decimals
    attempts = [
        {
            "name": p.name,
            "pull_direction": list(_vec(p.direction, d + 2)),
            "plane_offset_mm": _round(p.level_mm, d),
            "refused": str(err) if err else "",
        }
        for p, err in tried
    ]
    message = (
        f"none of {len(tried)} partings passes every gate; the best-ranked, {best.name} at "
        f"{best.level_mm:.2f} mm, failed: {first.message}"
    )
    detail = {k: v for k, v in first.detail.items() if k != "check"}
    if isinstance(first, MoldGateFailed):
        return MoldGateFailed(first.check, message, **detail, partings_tried=attempts)
    return type(first)(message, **detail, partings_tried=attempts)


def build_report(
    geom: MoldGeometry,
    out: ExportedHalves,
    gated: GateResult,
    gate: GateInfo,
    three_mf: bytes,
    input_size: tuple[int, int],
    spec: MoldSpec,
    params: MoldParams,
    tried: Sequence[tuple[Parting, _PartingRefused | None]] = (),
) -> MoldReport:
    """Everything the factory and QA read, floats rounded to ``report_decimals``."""
    d = params.report_decimals
    n_in_v, n_in_f = input_size
    part, parting, layout, solid, mesh = geom.part, geom.parting, geom.layout, geom.solid, geom.mesh
    half_a, half_b, to_mold = geom.half_a, geom.half_b, geom.to_mold
    to_a, to_b, va, fa, vb, fb = out.to_a, out.to_b, out.va, out.fa, out.vb, out.fb
    stl_a, stl_b = out.stl_a, out.stl_b
    channels_outside = gated.channels_outside_mm3  # what the pour adds to the cavity
    input_to_mold = to_mold @ part.input_to_part
    part_volume = solid.volume()

    def half_info(
        name: str,
        role: str,
        solid_half: m3.Manifold,
        v: np.ndarray,
        f: np.ndarray,
        orientation: str,
        to_print: Affine,
        stl: bytes,
    ) -> HalfInfo:
        return HalfInfo(
            name=name,
            file=f"mold_{name}.stl",
            role=role,
            triangles=len(f),
            volume_ml=_round(solid_half.volume() / MM3_PER_ML, d),
            bbox_min=_vec(v.min(axis=0), d),
            bbox_max=_vec(v.max(axis=0), d),
            print_orientation=orientation,
            print_to_mold=_matrix(np.linalg.inv(to_print), d),
            sha256=hashlib.sha256(stl).hexdigest(),
        )

    halves = (
        half_info(
            "a",
            "female sockets, sprue and vents; pour side",
            half_a,
            va,
            fa,
            spec.print_orientation,
            to_a,
            stl_a,
        ),
        half_info("b", "male keys", half_b, vb, fb, "parting_up", to_b, stl_b),
    )
    report = MoldReport(
        software=software_versions(MOLD_SOFTWARE),
        spec=spec,
        params=params,
        part=PartInfo(
            input_vertices=n_in_v,
            input_triangles=n_in_f,
            triangles=len(part.mesh.faces),
            bodies_merged=part.bodies_merged,
            bodies_dropped=part.bodies_dropped,
            scale_mm_per_unit=_round(part.input_to_part[0, 0], d + 4),
            volume_ml=_round(part_volume / MM3_PER_ML, d),
            surface_area_mm2=_round(solid.surface_area(), d),
            bbox_min=_vec(mesh.vertices.min(axis=0), d),
            bbox_max=_vec(mesh.vertices.max(axis=0), d),
            input_to_mold=_matrix(input_to_mold, d),
        ),
        parting=PartingInfo(
            mode=spec.parting,
            chosen=parting.name,
            pull_direction=_vec(parting.direction, d + 2),
            plane_offset_mm=_round(parting.level_mm, d),
            cross_section_mm2=_round(parting.cross_section_mm2, d),
            undercut_fraction_a=_round(parting.undercut_fraction_a, d),
            undercut_fraction_b=_round(parting.undercut_fraction_b, d),
            undercut_area_a_mm2=_round(parting.undercut_area_a_mm2, d),
            undercut_area_b_mm2=_round(parting.undercut_area_b_mm2, d),
            undercut_faces_cast=parting.undercut_faces_cast,
            candidates=tuple(
                CandidateInfo(
                    name=c.name,
                    pull_direction=_vec(c.direction, d + 2),
                    plane_offset_mm=_round(c.level_mm, d),
                    undercut_fraction_sampled=_round(c.undercut_fraction, d),
                    cross_section_mm2=_round(c.cross_section_mm2, d),
                )
                for c in parting.candidates
            ),
            tried=tuple(
                PartingAttempt(
                    name=p.name,
                    pull_direction=_vec(p.direction, d + 2),
                    plane_offset_mm=_round(p.level_mm, d),
                    passed=err is None,
                    refused=str(err) if err is not None else "",
                )
                for p, err in tried
            ),
        ),
        cavity_volume_ml=_round(gated.cavity_mm3 / MM3_PER_ML, d),
        pour_volume_ml=_round((gated.cavity_mm3 + channels_outside) / MM3_PER_ML, d),
        mold_material_ml=_round((half_a.volume() + half_b.volume()) / MM3_PER_ML, d),
        block_min=_vec(layout.block_min, d),
        block_max=_vec(layout.block_max, d),
        halves=halves,
        keys=tuple(
            KeyInfo(
                position=(_round(k.x, d), _round(k.y, d), 0.0),
                diameter_mm=_round(2 * k.radius, d),
                tip_diameter_mm=_round(2 * k.tip_radius, d),
                height_mm=_round(k.height, d),
                sink_mm=_round(k.sink, d),
                clearance_mm=_round(k.clearance, d),
            )
            for k in layout.keys
        ),
        keys_polarised=layout.keys_polarised,
        sprue=_channel_info(layout.sprue, d),
        vents=tuple(_channel_info(v, d) for v in layout.vents),
        three_mf_sha256=hashlib.sha256(three_mf).hexdigest(),
        gate=GateInfo(
            passed=gate.passed,
            checks=tuple(
                c.model_copy(update={"measured": float(f"{c.measured:.6g}") + 0.0})
                for c in gate.checks
            ),
        ),
    )
    return report
