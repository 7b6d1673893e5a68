"""Array <-> manifold3d conversions, rigid frames and the canonical float32 mesh.

Shapes follow trimesh's habit: ``vertices (n, 3) float64``, ``faces (m, 3) int64``.
Everything here is a plain function on arrays; nothing touches the disk.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import NoReturn

import manifold3d as m3
import numpy as np

from mold.errors import PartDegenerate, PartNotManifold, PartSelfIntersecting
from mold.exact import confirmed_crossings

Affine = np.ndarray  # (4, 4) float64, acts on column vectors

CROSSING_FLAGS_KEPT = 8
"""How many recent meshes' MeshLab crossing flags are remembered (one byte per face)."""
_crossing_flags_seen: OrderedDict[bytes, np.ndarray] = OrderedDict()
_crossing_flags_lock = threading.Lock()


@dataclass(frozen=True)
class TriMesh:
    """An indexed triangle mesh: ``vertices (n, 3)``, ``faces (m, 3)``."""

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """``(m, 3, 3)`` corner coordinates."""
        return self.vertices[self.faces]


def validate_arrays(vertices: np.ndarray, faces: np.ndarray) -> TriMesh:
    """Check shapes, dtypes and index ranges; return float64/int64 copies.

    Raises ``PartDegenerate`` naming the bad value, so the order's sender knows what to fix.
    """
    try:
        v = np.array(vertices, dtype=np.float64)
        f = np.array(faces)
    except (TypeError, ValueError) as exc:
        raise PartDegenerate(f"vertices/faces are not numeric arrays: {exc}") from exc
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 4:
        raise PartDegenerate("vertices must be an (n >= 4, 3) array", shape=list(v.shape))
    if f.ndim != 2 or f.shape[1] != 3 or len(f) < 4:
        raise PartDegenerate("faces must be an (m >= 4, 3) array", shape=list(f.shape))
    if not np.issubdtype(f.dtype, np.integer) and not np.all(np.equal(np.mod(f, 1), 0)):
        raise PartDegenerate("faces must hold integer vertex indices")
    f = f.astype(np.int64)
    if not np.isfinite(v).all():
        raise PartDegenerate("vertices contain NaN or infinite values")
    if f.min() < 0 or f.max() >= len(v):
        raise PartDegenerate(
            "face index out of range", min_index=int(f.min()), max_index=int(f.max()), n=len(v)
        )
    return TriMesh(v, f)


def indices_out_of_range(faces: np.ndarray, vertex_count: int) -> bool:
    """Whether a face refers to a vertex that does not exist (the one check of a face
    list every reader and stage applies before indexing with it)."""
    return len(faces) > 0 and (int(faces.min()) < 0 or int(faces.max()) >= vertex_count)


def without_non_finite(
    vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(vertices, faces, faces dropped): faces with a NaN or infinite corner dropped (a
    scanner's missing depth), the vertices compacted to those still used. The input as it
    is when every vertex is finite; all faces dropped when none is left whole."""
    finite = np.isfinite(vertices).all(axis=1)
    if finite.all() or len(faces) == 0 or indices_out_of_range(faces, len(vertices)):
        return vertices, faces, 0  # (bad indices are check_input's to name)
    whole = finite[faces].all(axis=1)
    kept = faces[whole]
    used = np.unique(kept)
    index = np.full(len(vertices), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return vertices[used], index[kept], int((~whole).sum())


def component_count(n: int, edges: np.ndarray) -> int:
    """How many connected components ``n`` vertices joined by ``edges (k, 2)`` form.

    Numpy union-find (hook each edge's larger root under its smaller one, then jump to the
    roots) rather than scipy's ``connected_components``: importing scipy.sparse costs
    ``sculpt mold`` about 0.1 s, more than this takes on a 1M-triangle mesh.
    """
    root = np.arange(n)
    a, b = edges[:, 0], edges[:, 1]
    while True:
        ra, rb = root[a], root[b]
        split = ra != rb
        if not split.any():
            return int(np.count_nonzero(root == np.arange(n)))
        np.minimum.at(root, np.maximum(ra[split], rb[split]), np.minimum(ra[split], rb[split]))
        while True:  # every vertex points at its root (pointers only go to smaller indices)
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped


def to_manifold(mesh: TriMesh) -> m3.Manifold:
    """Build a manifold3d solid (double precision); reject anything that is not closed."""
    m = m3.Manifold(
        m3.Mesh64(
            vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float64),
            tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint64),
        )
    )
    status = m.status()
    if status != m3.Error.NoError:
        raise PartNotManifold(
            "the part is not a closed, consistently oriented 2-manifold "
            "(open edges, edges shared by more than two faces, or flipped faces)",
            manifold_status=status.name,
        )
    if m.is_empty():
        raise PartDegenerate("the part encloses no volume")
    return m


def self_intersecting_faces(mesh: TriMesh) -> int:
    """How many faces cross another, non-adjacent face (pymeshlab's tri-tri test, its flags
    confirmed in exact arithmetic).

    manifold3d accepts such a surface (status NoError) but its booleans then return inverted
    pieces: a cow's tail through its body gives a cavity with a hole punched in the mold.
    """
    return int(self_intersecting_mask(mesh).sum())


def self_intersecting_mask(mesh: TriMesh) -> np.ndarray:
    """Per face, whether :func:`self_intersecting_faces` counts it: ``(m,)`` bool.

    pymeshlab's floating-point flags, without those proven false in exact arithmetic
    (:mod:`mold.exact`: near-coplanar faces sharing a vertex)."""
    flagged = meshlab_crossing_flags(mesh.vertices, mesh.faces)
    return confirmed_crossings(mesh.vertices, mesh.faces, flagged)


def meshlab_crossing_flags(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """pymeshlab's per-face self-intersection flags, ``(m,)`` bool, the same in every process.

    MeshLab tests each pair of nearby faces once, the earlier face against the later
    (faces already tested carry a flag bit from vcglib's process-wide bit allocator), and
    its floating-point triangle-triangle test is not symmetric for nearly coplanar faces.
    Measured: after 4 hole fills (``meshing_close_holes``) in a process, every pair is
    tested both ways from then on, most likely because the filling keeps bits it never
    hands back. So the same mesh got different flags in a fresh ``sculpt mold`` and in a
    worker that had repaired a few meshes (a wing: 7 flags, then 13). Testing the faces in
    their order and in reverse order and keeping the union is the both-ways result in
    either state.

    The mesh stage's repairs ask again about a mesh they already asked about (each
    float32 nudge in ``separate_crossings`` starts from the same mesh), and on a
    sliver-heavy CAD plate one answer takes seconds. So the last
    ``CROSSING_FLAGS_KEPT`` answers are kept, keyed by a hash of the exact arrays.
    """
    import pymeshlab  # heavy import, only needed here

    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(np.asarray(faces).astype(np.int32))
    key = _arrays_key(vertices, faces)
    with _crossing_flags_lock:
        known = _crossing_flags_seen.get(key)
        if known is not None:
            _crossing_flags_seen.move_to_end(key)
            return known.copy()
    flagged = np.zeros(len(faces), dtype=bool)
    for order in (slice(None), slice(None, None, -1)):
        ms = pymeshlab.MeshSet()
        ms.add_mesh(pymeshlab.Mesh(vertices, np.ascontiguousarray(faces[order])))
        ms.compute_selection_by_self_intersections_per_face()
        flagged[order] |= np.asarray(ms.current_mesh().face_selection_array(), dtype=bool)
    with _crossing_flags_lock:
        _crossing_flags_seen[key] = flagged.copy()
        while len(_crossing_flags_seen) > CROSSING_FLAGS_KEPT:
            _crossing_flags_seen.popitem(last=False)
    return flagged


def _arrays_key(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A digest of both arrays' shapes and bytes (contiguous float64 and int32)."""
    digest = hashlib.blake2b(digest_size=20)
    for array in (vertices, faces):
        digest.update(repr(array.shape).encode())
        digest.update(array.data if array.size else b"")
    return digest.digest()


def check_not_self_intersecting(mesh: TriMesh) -> None:
    count = self_intersecting_faces(mesh)
    if count:
        raise_self_intersecting(count)


def raise_self_intersecting(count: int) -> NoReturn:
    raise PartSelfIntersecting(
        f"{count} faces of the part pass through other faces; repair it into one "
        "non-intersecting surface (e.g. a voxel remesh) first",
        faces=count,
    )


def from_manifold(m: m3.Manifold) -> TriMesh:
    """Positions and triangles of a manifold, in double precision."""
    mesh = m.to_mesh64()
    return TriMesh(
        np.asarray(mesh.vert_properties[:, :3], dtype=np.float64),
        np.asarray(mesh.tri_verts, dtype=np.int64),
    )


def weld_rows(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact welding: unique rows of ``(n, 3)`` points in x, y, z order, and the inverse map.

    Same result as ``np.unique(points, axis=0, return_inverse=True)``, several times faster.
    """
    if len(points) == 0:
        return points.copy(), np.zeros(0, dtype=np.int64)
    order = np.lexsort((points[:, 2], points[:, 1], points[:, 0]))
    ordered = points[order]
    new = np.empty(len(points), dtype=bool)
    new[0] = True
    diff = ordered[1:] != ordered[:-1]
    new[1:] = diff[:, 0] | diff[:, 1] | diff[:, 2]
    inverse = np.empty(len(points), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def canonical_float32(mesh: TriMesh) -> tuple[np.ndarray, np.ndarray]:
    """Float32 positions in sorted order and faces in sorted order, orientation kept.

    Independent of manifold3d's internal (possibly thread-dependent) ordering, so equal
    geometry gives equal bytes. Vertices that coincide in float32 are merged on purpose, as
    any STL reader does. Merging the two ends of an edge (booleans leave edges of 1e-7 mm)
    is an edge collapse: the two triangles on that edge lose an index and are dropped, the
    rest stays a closed manifold unless the collapse is illegal, which the gate's STL edge
    check then reports.
    """
    v32 = mesh.vertices.astype(np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    uniq, inverse = weld_rows(v32)
    faces = inverse[mesh.faces]
    # rotate each triangle so its smallest index comes first (keeps the winding)
    shift = np.argmin(faces, axis=1)
    rows = np.arange(len(faces))[:, None]
    cols = (shift[:, None] + np.arange(3)[None, :]) % 3
    faces = faces[rows, cols]
    keep = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    )
    faces = faces[keep]
    order = np.lexsort((faces[:, 2], faces[:, 1], faces[:, 0]))
    return uniq.astype(np.float32), faces[order].astype(np.uint32)


def frame_for_direction(direction: np.ndarray) -> np.ndarray:
    """A rotation ``(3, 3)`` whose rows are ``(u, v, d)``: it maps ``d`` onto +z.

    ``u`` comes from the part axis least aligned with ``d``, so the frame is a pure function
    of ``d`` (deterministic, no sign flips between runs).
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.eye(3)[int(np.argmin(np.abs(d)))]
    u = helper - d * float(helper @ d)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    return np.stack([u, v, d])


def affine(rotation: np.ndarray | None = None, translation: np.ndarray | None = None) -> Affine:
    """A ``(4, 4)`` matrix ``x -> R x + t``."""
    out = np.eye(4)
    if rotation is not None:
        out[:3, :3] = rotation
    if translation is not None:
        out[:3, 3] = translation
    return out


def apply_affine(matrix: Affine, points: np.ndarray) -> np.ndarray:
    """Transform ``(n, 3)`` points by a ``(4, 4)`` affine matrix."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def transform_manifold(m: m3.Manifold, matrix: Affine) -> m3.Manifold:
    return m.transform(np.ascontiguousarray(matrix[:3, :4], dtype=np.float64))


def face_geometry(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids ``(m, 3)``, unit normals ``(m, 3)`` and areas ``(m,)`` of ``(m, 3, 3)`` tris."""
    cross = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    normals = np.divide(
        cross, double_area[:, None], out=np.zeros_like(cross), where=double_area[:, None] > 0
    )
    centroids = (tris[:, 0] + tris[:, 1] + tris[:, 2]) / 3.0
    return centroids, normals, 0.5 * double_area


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points.min(axis=0), points.max(axis=0)
