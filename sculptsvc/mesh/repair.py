"""Repair: whatever came in becomes one watertight, outward-oriented solid, or a typed rejection.

Order of work (each step logged in :class:`RepairLog`):

1. check the input (finite, non-empty, within the size limit);
2. weld vertices, drop degenerate, duplicate and two-sided (membrane) faces;
3. split into shells; per shell: fix non-manifold edges/vertices, fill holes, orient outward;
4. drop debris shells below a volume (closed) or area (open) fraction of the largest;
5. unite the closed shells with manifold3d (lid, spout and body become one solid);
6. if a shell stays open or the union is not a manifold, rebuild the surface from a voxel
   field (:mod:`sculptsvc.mesh.remesh`): the user prefers a repaired sculpture to a rejection;
   so too when the union leaves solids that all nearly touch (joined through gaps under
   ``fuse_gap_mm`` at the cast size: a figure on a base modelled apart, a wing on a body),
   whose thickened surfaces the rebuild fuses into one;
7. more than ``max_parts`` solids left, or no enclosed volume: ``UnrepairableMesh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import manifold3d as m3
import numpy as np
import pymeshlab
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from mold.geometry import indices_out_of_range, without_non_finite
from sculptsvc.errors import UnrepairableMesh
from sculptsvc.logging import get_logger
from sculptsvc.mesh.params import MeshParams
from sculptsvc.mesh.remesh import voxel_remesh

log = get_logger(__name__)


@dataclass
class RepairLog:
    """What repair found and did; copied into the stage report."""

    method: str = "none"  # none | direct | remesh
    actions: list[str] = field(default_factory=list)
    welded_vertices: int = 0
    removed_faces: int = 0
    shells_in: int = 0
    debris_shells: int = 0
    holes_filled: int = 0
    boundary_edges_in: int = 0
    non_manifold_edges_in: int = 0

    def add(self, action: str) -> None:
        self.actions.append(action)


@dataclass
class _Shell:
    mesh: trimesh.Trimesh
    closed: bool
    volume: float
    area: float


def diagonal(vertices: np.ndarray) -> float:
    """Bounding-box diagonal of (n, 3) points (1.0 for a degenerate box)."""
    if len(vertices) == 0:
        return 1.0
    d = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    return d if d > 0 else 1.0


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed, oriented triangle mesh (positive: normals point out).

    The divergence-theorem sum alone: ``trimesh.Trimesh.volume`` computes the full mass
    properties (centre of mass, inertia) for it, several times slower on 70k triangles.
    """
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return float(np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0)


def check_input(vertices: np.ndarray, faces: np.ndarray, params: MeshParams) -> float:
    """Reject inputs no repair can make sense of, before spending time on them; returns the
    bounding-box diagonal of the vertices that faces use."""
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise UnrepairableMesh("mesh has no triangles", faces=len(faces))
    if len(faces) > params.max_input_faces:
        raise UnrepairableMesh(
            f"mesh has {len(faces)} triangles, more than the limit {params.max_input_faces}",
            faces=len(faces),
        )
    if indices_out_of_range(faces, len(vertices)):
        raise UnrepairableMesh("mesh faces reference vertices that do not exist")
    if not np.isfinite(vertices[faces]).all():
        raise UnrepairableMesh("mesh has non-finite vertex coordinates (NaN or inf)")
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True  # the same set as np.unique(faces), without its sort
    referenced = vertices[used]
    if float(np.ptp(referenced, axis=0).min()) <= 0:
        raise UnrepairableMesh("mesh is flat: its bounding box has zero thickness")
    return diagonal(referenced)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each distinct row, inverse) for an (n, k) int array; 1-D sort, fast."""
    _, first, inverse = np.unique(
        trimesh.grouping.hashable_rows(np.ascontiguousarray(rows)),
        return_index=True,
        return_inverse=True,
    )
    return first, inverse.reshape(-1)


def weld(
    vertices: np.ndarray, faces: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices closer than ``tolerance`` (grid snap); deterministic order."""
    if tolerance <= 0:
        keys = np.ascontiguousarray(vertices).view(np.int64)
    else:
        keys = np.round(vertices / tolerance).astype(np.int64)
    first, inverse = unique_rows(keys)
    return vertices[first], inverse[faces]


def clean_faces(faces: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Drop degenerate faces, repeats, and both sides of two-sided membranes."""
    stats: dict[str, int] = {}
    f = faces
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    tri = vertices[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    scale = diagonal(vertices)
    degenerate = repeated | (area2 <= (scale * 1e-12) ** 2)
    stats["degenerate"] = int(degenerate.sum())
    f = f[~degenerate]
    # Same vertex set: same orientation = repeat (keep one); opposite = a membrane (drop all).
    set_idx, set_inv = unique_rows(np.sort(f, axis=1))
    _, orient_inv = unique_rows(_canonical_rotation(f))
    differs = orient_inv != orient_inv[set_idx][set_inv]
    membrane_sets = np.zeros(len(set_idx), dtype=bool)
    membrane_sets[set_inv[differs]] = True
    membrane = membrane_sets[set_inv]
    keep = ~membrane & (np.arange(len(f)) == set_idx[set_inv])
    stats["membrane"] = int(membrane.sum())
    stats["duplicate"] = int((~membrane).sum() - keep.sum())
    return f[keep], stats


def _canonical_rotation(faces: np.ndarray) -> np.ndarray:
    """Rotate each (a, b, c) so the smallest index leads; keeps the orientation."""
    shift = np.argmin(faces, axis=1)
    idx = (np.arange(3)[None, :] + shift[:, None]) % 3
    return np.take_along_axis(faces, idx, axis=1)


def _edge_keys(faces: np.ndarray) -> np.ndarray:
    """One int64 per directed edge (face ``i``'s edges at ``3 i .. 3 i + 2``): its
    undirected key (``min * n + max``) times two plus its direction bit."""
    f = np.asarray(faces, dtype=np.int64)
    n = int(f.max()) + 1
    a, b = f.ravel(), f[:, [1, 2, 0]].ravel()
    return (np.minimum(a, b) * n + np.maximum(a, b)) * 2 + (a > b)


def _counts_of_sorted(keyed: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """(edge_counts, start of each undirected edge's run, its length) of sorted keys."""
    repeated_directed = int(np.count_nonzero(keyed[1:] == keyed[:-1]))
    undirected = keyed >> 1
    starts = np.flatnonzero(np.concatenate(([True], undirected[1:] != undirected[:-1])))
    counts = np.diff(np.append(starts, len(undirected)))
    return (int((counts == 1).sum()), int((counts > 2).sum()), repeated_directed), starts, counts


def edge_counts(faces: np.ndarray) -> tuple[int, int, int]:
    """(boundary edges, non-manifold edges, directed edges used twice) of (m, 3) faces.

    One sort does both counts: each edge is one int64 (``_edge_keys``), so equal values are
    one directed edge used twice and values equal but for the last bit are one undirected
    edge.
    """
    if len(faces) == 0:
        return 0, 0, 0
    return _counts_of_sorted(np.sort(_edge_keys(faces)))[0]


@dataclass(frozen=True)
class EdgeCensus:
    """The edges of one face array, sorted once and read three ways: :func:`edge_counts`,
    the holes (boundary loops) and the faces' edge adjacency. Repair asks all three of the
    same faces; each asked alone sorts the 3 m edges again (about 10-40 ms each at 70k)."""

    counts: tuple[int, int, int]
    """As :func:`edge_counts`: (boundary, non-manifold, directed edges used twice)."""
    vertex_count: int
    _sorted_keys: np.ndarray
    _sorted_faces: np.ndarray
    _starts: np.ndarray
    _run_lengths: np.ndarray

    @property
    def closed(self) -> bool:
        """Watertight and consistently oriented (as :func:`is_closed_manifold`)."""
        return self.counts == (0, 0, 0) and len(self._sorted_keys) > 0

    def boundary_loops(self) -> int:
        """Number of holes: connected loops of edges that only one face uses."""
        single = self._sorted_keys[self._starts[self._run_lengths == 1]] >> 1
        if len(single) == 0:
            return 0
        edges = np.stack([single // self.vertex_count, single % self.vertex_count], axis=1)
        return _loops(edges)

    def face_adjacency(self) -> np.ndarray:
        """(e, 2) faces that share an edge used by exactly two faces: trimesh's
        ``face_adjacency`` (non-manifold edges join no faces), as a set of pairs."""
        first = self._starts[self._run_lengths == 2]
        pairs = np.stack([self._sorted_faces[first], self._sorted_faces[first + 1]], axis=1)
        return pairs[pairs[:, 0] != pairs[:, 1]]  # a face (a, a, b) meets only itself


def edge_census(faces: np.ndarray) -> EdgeCensus:
    """The :class:`EdgeCensus` of (m, 3) faces: one stable argsort of the directed edges
    (the face of each sorted edge is its position // 3)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return EdgeCensus((0, 0, 0), 0, empty, empty, empty, empty)
    keyed = _edge_keys(faces)
    order = np.argsort(keyed, kind="stable")
    keyed = keyed[order]
    counts, starts, lengths = _counts_of_sorted(keyed)
    return EdgeCensus(counts, int(faces.max()) + 1, keyed, order // 3, starts, lengths)


def is_closed_manifold(faces: np.ndarray) -> bool:
    """Every edge has exactly two faces, used once in each direction (oriented, watertight)."""
    if len(faces) == 0:
        return False
    return edge_counts(faces) == (0, 0, 0)


def _loops(edges: np.ndarray) -> int:
    """Connected components of the graph of (k, 2) vertex-index edges."""
    nodes, local = np.unique(edges, return_inverse=True)
    local = local.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(local)), (local[:, 0], local[:, 1])), shape=(len(nodes),) * 2)
    return int(connected_components(graph, directed=False)[0])


def _meshset(vertices: np.ndarray, faces: np.ndarray) -> pymeshlab.MeshSet:
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertices, faces))
    return ms


def _current(ms: pymeshlab.MeshSet) -> trimesh.Trimesh:
    out = ms.current_mesh()
    verts, faces = weld(out.vertex_matrix(), out.face_matrix().astype(np.int64), 0.0)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    mesh.remove_unreferenced_vertices()
    return mesh


def _repair_shell(
    shell: trimesh.Trimesh, params: MeshParams, census: EdgeCensus | None = None
) -> tuple[_Shell, int]:
    """Fix one connected shell (pymeshlab only where needed); returns it and holes filled.

    A shell that MeshLab cannot fix (its filters refuse a mesh that is still not
    2-manifold, as welding its output can make it) comes back open: the voxel rebuild then
    closes it, instead of the order failing on a filter's exception."""
    holes = 0
    mesh = shell
    try:
        mesh, holes, counts = _close_shell(shell, params, census)
        closed = counts == (0, 0, 0) and len(mesh.faces) > 0
    except pymeshlab.PyMeshLabException as exc:
        log.debug("shell left open", reason=str(exc).splitlines()[-1], faces=len(shell.faces))
        closed = is_closed_manifold(mesh.faces)
    volume = signed_volume(mesh.vertices, mesh.faces) if closed else 0.0
    if closed and volume < 0:
        mesh.invert()
        volume = -volume
    return _Shell(mesh=mesh, closed=closed, volume=volume, area=float(mesh.area)), holes


def _close_shell(
    shell: trimesh.Trimesh, params: MeshParams, census: EdgeCensus | None = None
) -> tuple[trimesh.Trimesh, int, tuple[int, int, int]]:
    """MeshLab's non-manifold repair and re-orientation where needed, then its hole filling;
    (mesh, holes found, the mesh's :func:`edge_counts`). ``census``: the shell's, where the
    caller has it. Raises ``PyMeshLabException`` when a filter refuses the shell."""
    if census is None:
        census = edge_census(shell.faces)
    boundary, nonmanifold, flipped = census.counts
    holes = 0
    mesh = shell
    if nonmanifold or flipped:
        ms = _meshset(mesh.vertices, mesh.faces)
        if nonmanifold:
            ms.meshing_repair_non_manifold_edges(method="Remove Faces")
            ms.meshing_repair_non_manifold_vertices()
        ms.meshing_re_orient_faces_coherently()
        mesh = _current(ms)
        census = edge_census(mesh.faces)
        boundary, nonmanifold, flipped = census.counts
    counts = census.counts
    if boundary and not nonmanifold:  # MeshLab fills holes of 2-manifold meshes only
        holes = census.boundary_loops()
        ms = _meshset(mesh.vertices, mesh.faces)
        # The first pass refuses fills that would self-intersect; a second closes the rest.
        ms.meshing_close_holes(
            maxholesize=params.max_hole_edges, newfaceselected=False, selfintersection=True
        )
        mesh = _current(ms)
        counts = edge_counts(mesh.faces)
        if counts[0]:
            ms.meshing_close_holes(
                maxholesize=params.max_hole_edges, newfaceselected=False, selfintersection=False
            )
            mesh = _current(ms)
            counts = edge_counts(mesh.faces)
    return mesh, holes, counts


def split_shells(
    mesh: trimesh.Trimesh, adjacency: np.ndarray | None = None
) -> list[trimesh.Trimesh]:
    """Edge-connected shells, largest first (ties by first face), without trimesh's repair.

    ``adjacency``: the faces' ``face_adjacency`` where the caller has it
    (:meth:`EdgeCensus.face_adjacency`); any order of the same pairs gives the same shells."""
    labels = trimesh.graph.connected_component_labels(
        mesh.face_adjacency if adjacency is None else adjacency, node_count=len(mesh.faces)
    )
    count = int(labels.max()) + 1 if len(labels) else 0
    if count <= 1:
        return [mesh]
    sizes = np.bincount(labels, minlength=count)
    first = np.full(count, len(labels))
    np.minimum.at(first, labels, np.arange(len(labels)))
    order = np.lexsort((first, -sizes))
    # Faces grouped by shell (in their order), each shell's vertices taken once: a voxel
    # rebuild that falls apart leaves ~10^4 specks, and a per-shell mask over all faces
    # plus trimesh's remove_unreferenced_vertices (which hashes the whole vertex array for
    # its cache) took 30 s there. The same arrays come out: np.unique's sorted indices are
    # the referenced vertices in their order, its inverse the faces renumbered.
    by_shell = np.argsort(labels, kind="stable")
    ends = np.cumsum(sizes)
    shells = []
    for label in order:
        faces = mesh.faces[by_shell[ends[label] - sizes[label] : ends[label]]]
        used, renumbered = np.unique(faces, return_inverse=True)
        shells.append(
            trimesh.Trimesh(mesh.vertices[used], renumbered.reshape(-1, 3), process=False)
        )
    return shells


def to_manifold(mesh: trimesh.Trimesh) -> m3.Manifold:
    return m3.Manifold(
        m3.Mesh(
            vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float32),
            tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint32),
        )
    )


def from_manifold(solid: m3.Manifold) -> trimesh.Trimesh:
    out = solid.to_mesh()
    verts = np.asarray(out.vert_properties, dtype=np.float64)[:, :3]
    return trimesh.Trimesh(verts, np.asarray(out.tri_verts, dtype=np.int64), process=False)


def _drop_debris(shells: list[_Shell], params: MeshParams, log_: RepairLog) -> list[_Shell]:
    closed_vol = max((s.volume for s in shells if s.closed), default=0.0)
    max_area = max((s.area for s in shells), default=0.0)
    kept: list[_Shell] = []
    for s in shells:
        small_closed = s.closed and s.volume <= params.debris_volume_ratio * closed_vol
        small_open = not s.closed and s.area <= params.debris_area_ratio * max_area
        if small_closed or small_open:
            log_.debris_shells += 1
            continue
        kept.append(s)
    if log_.debris_shells:
        log_.add(f"dropped {log_.debris_shells} debris shell(s)")
    return kept


class _NearlyTouching(UnrepairableMesh):
    """Raised by :func:`keep_parts` (asked to measure gaps) for solids that all nearly touch:
    :func:`repair` fuses them by the voxel rebuild. Any other caller still gets the typed
    refusal of too many parts, with the same message."""

    def __init__(self, message: str, widest_gap_mm: float, **detail: object) -> None:
        super().__init__(message, **detail)
        self.widest_gap_mm = widest_gap_mm


def _unite(shells: list[_Shell], params: MeshParams, log_: RepairLog) -> trimesh.Trimesh | None:
    """Union of closed shells with manifold3d; None when manifold3d refuses one of them.
    Raises :class:`_NearlyTouching` for solids that stay apart but nearly touch."""
    if len(shells) == 1:
        return shells[0].mesh  # closed and oriented (checked); nothing to unite
    solids = []
    for s in shells:
        solid = to_manifold(s.mesh)
        if solid.status() != m3.Error.NoError:
            return None
        solids.append(solid)
    united = solids[0] if len(solids) == 1 else m3.Manifold.batch_boolean(solids, m3.OpType.Add)
    if united.status() != m3.Error.NoError or united.is_empty():
        return None
    if len(solids) > 1:
        log_.add(f"united {len(solids)} shells")
    return keep_parts(united, params, log_, measure_gaps=True)


def keep_parts(
    solid: m3.Manifold, params: MeshParams, log_: RepairLog, *, measure_gaps: bool = False
) -> trimesh.Trimesh:
    """The solid without debris parts; more than ``max_parts`` parts are refused, as
    :class:`_NearlyTouching` when ``measure_gaps`` finds them all joined through gaps under
    ``fuse_gap_mm``."""
    parts = sorted(solid.decompose(), key=lambda p: -p.volume())
    largest = parts[0].volume()
    kept = [p for p in parts if p.volume() > params.debris_volume_ratio * largest]
    if len(kept) < len(parts):
        log_.add(f"dropped {len(parts) - len(kept)} small disjoint part(s)")
    if len(kept) > params.max_parts:
        ratios = ", ".join(f"{p.volume() / largest:.2f}" for p in kept[:5])
        message = (
            f"mesh is {len(kept)} disjoint solids (volumes relative to the largest: {ratios}); "
            f"a sculpture must be at most {params.max_parts} piece(s)"
        )
        widest = _widest_joining_gap_mm(kept, solid, params) if measure_gaps else None
        if widest is not None:
            raise _NearlyTouching(message, widest, parts=len(kept))
        if measure_gaps and params.fuse_gap_mm > 0 and len(kept) <= params.fuse_max_parts:
            message += f", and they are not all within {params.fuse_gap_mm:g} mm of each other"
        raise UnrepairableMesh(message, parts=len(kept))
    result = kept[0] if len(kept) == 1 else m3.Manifold.batch_boolean(kept, m3.OpType.Add)
    return from_manifold(result)


def _widest_joining_gap_mm(
    parts: list[m3.Manifold], whole: m3.Manifold, params: MeshParams
) -> float | None:
    """The widest gap (mm at the cast size) needed to join every part to the others through
    gaps under ``fuse_gap_mm`` (the bottleneck of their minimum spanning tree), or None when
    some part is farther from all the rest, or there are too many parts to measure.

    manifold3d's ``min_gap`` measures each pair, searching no farther than the limit."""
    if params.fuse_gap_mm <= 0 or len(parts) > params.fuse_max_parts:
        return None
    box = np.asarray(whole.bounding_box(), dtype=np.float64)
    longest = float((box[3:] - box[:3]).max())
    # mm per model unit: the mold scales the longest side to its size (None: already mm)
    scale = 1.0 if params.mold_size_mm is None else params.mold_size_mm / max(longest, 1e-300)
    limit = params.fuse_gap_mm / scale
    count = len(parts)
    pairs: list[tuple[int, int, float]] = []
    for i in range(count):
        for j in range(i + 1, count):
            gap = float(parts[i].min_gap(parts[j], limit))
            if gap < limit:
                pairs.append((i, j, gap))
    if len(pairs) < count - 1:
        return None
    rows, cols, widths = (np.array(column) for column in zip(*pairs, strict=True))
    # every weight shifted by the limit: scipy reads a weight of (nearly) zero as no edge,
    # and a spanning tree has count - 1 edges whatever it is, so the same tree is minimal
    graph = coo_matrix((widths + limit, (rows, cols)), shape=(count, count))
    tree = minimum_spanning_tree(graph)
    if tree.nnz < count - 1:
        return None
    return (float(tree.data.max()) - limit) * scale


def coarsen(
    vertices: np.ndarray, faces: np.ndarray, target: int, diag: float, log_: RepairLog
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering to about ``target`` triangles: the vertices of each grid cell
    become their mean, faces that lose a corner go. One linear pass (the grid snap of
    :func:`weld`), where quadric decimation of a million triangles takes a minute and
    pymeshlab's clustering filter spends seconds converting the mesh. The cell is sized
    from the surface area (a closed surface of area A has about 2 A / c^2 triangles of
    size c); merged thin parts leave membranes and non-manifold edges, which repair fixes
    next."""
    tri = vertices[faces]
    doubled = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cell = float(np.sqrt(doubled.sum() / target))
    keys = np.floor((vertices - vertices.min(axis=0)) / cell).astype(np.int64)
    _, inverse = unique_rows(keys)
    count = int(inverse.max()) + 1
    weight = np.bincount(inverse, minlength=count).astype(np.float64)
    means = np.stack(
        [np.bincount(inverse, vertices[:, k], minlength=count) / weight for k in range(3)], axis=1
    )
    clustered = inverse[faces]
    keep = (
        (clustered[:, 0] != clustered[:, 1])
        & (clustered[:, 1] != clustered[:, 2])
        & (clustered[:, 0] != clustered[:, 2])
    )
    log_.add(
        f"coarsened {len(faces)} triangles to {int(keep.sum())} by vertex clustering "
        f"(cell {cell:.3g}, {cell / diag:.2%} of the diagonal)"
    )
    return means, clustered[keep]


def repair(mesh: trimesh.Trimesh, params: MeshParams) -> tuple[trimesh.Trimesh, RepairLog]:
    """One watertight, consistently outward-oriented solid from ``mesh``, or UnrepairableMesh."""
    log_ = RepairLog()
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices, faces, non_finite = without_non_finite(vertices, faces)
    if non_finite:
        if len(faces) == 0:
            raise UnrepairableMesh(
                "every triangle has a non-finite vertex coordinate (NaN or inf)",
                faces=non_finite,
            )
        log_.add(f"removed {non_finite} faces with non-finite vertex coordinates")
    diag = check_input(vertices, faces, params)  # > 0: a flat box is refused
    if len(faces) > params.coarsen_above_faces:
        vertices, faces = coarsen(vertices, faces, params.coarsen_to_faces, diag, log_)

    welded_v, welded_f = weld(vertices, faces, params.weld_tolerance_rel * diag)
    log_.welded_vertices = len(vertices) - len(welded_v)
    cleaned_f, stats = clean_faces(welded_f, welded_v)
    log_.removed_faces = len(faces) - len(cleaned_f)
    if log_.welded_vertices:
        log_.add(f"welded {log_.welded_vertices} vertices")
    for kind, count in stats.items():
        if count:
            log_.add(f"removed {count} {kind} faces")
    if len(cleaned_f) == 0:
        raise UnrepairableMesh("mesh has no triangles with area")
    base = trimesh.Trimesh(welded_v, cleaned_f, process=False)
    base.remove_unreferenced_vertices()
    census = edge_census(base.faces)  # renumbered vertices: the same edges, counted once
    log_.boundary_edges_in, log_.non_manifold_edges_in, _ = census.counts

    pieces = split_shells(base, census.face_adjacency())
    log_.shells_in = len(pieces)
    if len(pieces) == 1 and census.closed:
        # Already closed and consistently oriented: at most inside-out.
        volume = signed_volume(base.vertices, base.faces)
        if volume < 0:
            base.invert()
            log_.add("turned inside-out faces outward")
        log_.method = "direct" if log_.actions else "none"
        return _finish(base, params, log_, diag, _Shell(base, True, abs(volume), 0.0))

    shells = []
    for piece in pieces:
        # one piece is the whole mesh: its census is the one just taken
        shell, holes = _repair_shell(piece, params, census if len(pieces) == 1 else None)
        log_.holes_filled += holes
        shells.append(shell)
    if log_.holes_filled:
        log_.add(f"filled {log_.holes_filled} hole(s)")
    shells = _drop_debris(shells, params, log_)
    if not shells:
        raise UnrepairableMesh("nothing but debris: no shell encloses a volume")

    result: trimesh.Trimesh | None = None
    proven: _Shell | None = None
    fusing: _NearlyTouching | None = None
    if all(s.closed for s in shells):
        log_.method = "direct"
        try:
            result = _unite(shells, params, log_)
        except _NearlyTouching as exc:
            if not params.remesh_fallback:
                raise UnrepairableMesh(exc.message, **exc.detail) from exc
            fusing = exc
        proven = shells[0] if len(shells) == 1 else None
    if result is None:
        open_count = sum(not s.closed for s in shells)
        if not params.remesh_fallback:
            raise UnrepairableMesh(
                f"{open_count} shell(s) could not be closed and the remesh fallback is off",
                open_shells=open_count,
            )
        log_.method = "remesh"
        why = (
            f"to fuse {fusing.detail['parts']} solids joined through gaps of at most "
            f"{fusing.widest_gap_mm:.2g} mm at the cast size"
            if fusing is not None
            else f"{open_count} shell(s) stayed open or did not form a manifold"
        )
        log_.add(f"rebuilt the surface from a {params.remesh_resolution}-voxel field ({why})")
        soup = trimesh.util.concatenate([s.mesh for s in shells])
        remeshed = voxel_remesh(soup, params.remesh_resolution, params.remesh_closing_voxels)
        solid = to_manifold(remeshed)
        if solid.status() != m3.Error.NoError or solid.is_empty():
            raise UnrepairableMesh(
                "the voxel remesh did not produce a closed surface", status=str(solid.status())
            )
        result = keep_parts(solid, params, log_)
    return _finish(result, params, log_, diag, proven)


def _finish(
    mesh: trimesh.Trimesh,
    params: MeshParams,
    log_: RepairLog,
    diag: float,
    proven: _Shell | None = None,
) -> tuple[trimesh.Trimesh, RepairLog]:
    """The last checks: closed, oriented, enclosing a volume. ``proven``: a shell whose
    closedness and volume were measured on this very mesh (not measured again)."""
    if proven is not None and proven.mesh is mesh and proven.closed:
        volume = proven.volume
    elif is_closed_manifold(mesh.faces):
        volume = signed_volume(mesh.vertices, mesh.faces)
    else:
        raise UnrepairableMesh("repair did not end with a closed, oriented surface")
    box = float(np.prod(np.ptp(mesh.vertices, axis=0)))
    if volume <= params.min_volume_ratio * max(box, 1e-300):
        raise UnrepairableMesh(
            f"mesh encloses almost no volume ({volume:.3g} for a bounding box of {box:.3g})",
            volume=volume,
        )
    log.debug("repaired", method=log_.method, actions=log_.actions, diagonal=diag)
    return mesh, log_
