"""UV atlas (no overlaps, all faces mapped), rasteriser, texture baking and colour sources."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from sculptsvc.errors import InvalidEvent
from sculptsvc.mesh import MeshParams, export_glb, process_mesh
from sculptsvc.mesh import uv as uv_module
from sculptsvc.mesh.colors import (
    color_source_from_visual,
    hex_to_linear_rgb,
    srgb_to_linear,
    vertex_color_source,
)
from sculptsvc.mesh.uv import (
    _folded_faces,
    _interpolated,
    _overlapping_faces,
    bake_texture,
    nearest_filled,
    rasterize,
    unwrap,
)
from sculptsvc.reconstruct.base import ColoredMesh

PARAMS = MeshParams(target_faces=2_000, texture_size=256)


def gradient(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """A smooth colour field: red along x, green along y, blue along z (points in [-10, 10])."""
    rgb = np.clip((points + 10.0) / 20.0, 0.0, 1.0) * 255.0
    return np.hstack([np.rint(rgb), np.full((len(points), 1), 255.0)]).astype(np.uint8)


def test_rasterizer_covers_each_texel_centre_exactly_once() -> None:
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    size = 16
    r = rasterize(uv, faces, size)
    flat = r.row * size + r.col
    counts = np.bincount(flat, minlength=size * size)
    assert counts.min() >= 1  # every texel centre is inside the square
    # Only texels whose centre lies exactly on the shared diagonal are claimed twice.
    assert int((counts > 1).sum()) == size
    assert np.allclose(r.bary.sum(axis=1), 1.0)
    assert (r.bary >= -1e-9).all()


def every_texel_of_the_box(
    uv: np.ndarray, faces: np.ndarray, size: int, eps: float = 1e-9
) -> list[tuple[int, int, int, float, float, float]]:
    """Reference: the barycentric test on every texel centre of each triangle's box, in
    (face, row, col) order, with the rasteriser's own arithmetic."""
    out = []
    for f, tri in enumerate(np.asarray(uv, dtype=np.float64)[faces] * size - 0.5):
        (x0, y0), e1, e2 = tri[0], tri[1] - tri[0], tri[2] - tri[0]
        det = e1[0] * e2[1] - e1[1] * e2[0]
        if abs(det) <= 1e-14:
            continue
        inv = 1.0 / det
        lo = np.clip(np.ceil(tri.min(axis=0)).astype(int), 0, size - 1)
        hi = np.clip(np.floor(tri.max(axis=0)).astype(int), -1, size - 1)
        for r in range(lo[1], hi[1] + 1):
            for c in range(lo[0], hi[0] + 1):
                dx, dy = c - x0, r - y0
                b1 = (dx * e2[1] - dy * e2[0]) * inv
                b2 = (dy * e1[0] - dx * e1[1]) * inv
                b0 = 1.0 - b1 - b2
                if b0 >= -eps and b1 >= -eps and b2 >= -eps:
                    out.append((f, r, c, b0, b1, b2))
    return out


LAYOUTS = ["random", "near_centres", "flat_rows", "slivers", "outside", "past_last_row"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rasterizer_finds_exactly_the_texels_of_a_full_box_scan(layout: str) -> None:
    """Only a band around each row's edge crossings is tested: it must lose no texel the
    full scan of the box accepts, nor change a barycentric. Hard cases: corners a hair off
    texel centres (the test's tolerance accepts a centre just outside), edges flat or
    nearly flat on a texel row, slivers, triangles past the image's border, and an edge a
    hair below the last row (the box is clipped to that row, which the edge misses)."""
    rng = np.random.default_rng(LAYOUTS.index(layout))
    size = 32
    hair = np.array([0.0, 1e-12, -1e-12])
    for _ in range(25):
        uv = rng.random((12, 2))
        if layout == "near_centres":
            uv = (np.round(uv * size) + 0.5 + rng.choice(hair, uv.shape)) / size
        elif layout == "flat_rows":
            uv[:, 1] = (np.round(uv[:, 1] * size) + 0.5 + rng.choice(hair, 12)) / size
        elif layout == "slivers":
            uv[:, 1] = uv[0, 1] + (uv[:, 1] - uv[0, 1]) * 1e-3
        elif layout == "outside":
            uv = uv * 1.4 - 0.2
        elif layout == "past_last_row":
            uv[:6, 1] = (size - 0.5 + 1e-12) / size  # just below the last row's centres
            uv[6:, 1] = 1.0 + uv[6:, 1] * 0.1  # the rest past the image's bottom
        faces = rng.integers(0, 12, (20, 3))
        if layout == "past_last_row":
            faces = np.column_stack([rng.integers(0, 6, (20, 2)), rng.integers(6, 12, 20)])
        r = rasterize(uv, faces, size)
        got = list(zip(r.face, r.row, r.col, *r.bary.T, strict=True))
        assert got == every_texel_of_the_box(uv, faces, size)
        if layout in ("near_centres", "past_last_row"):
            assert got  # the hard texels are there to lose


@pytest.mark.parametrize("method", ["projection", "xatlas"])
def test_unwrap_maps_every_face_without_overlap(method: str) -> None:
    mesh = trimesh.creation.torus(major_radius=8.0, minor_radius=3.0)
    params = PARAMS.model_copy(update={"uv_method": method})
    atlas = unwrap(mesh, params)
    assert len(atlas.faces) == len(mesh.faces)
    assert (atlas.uv >= 0).all() and (atlas.uv <= 1).all()
    # Vertices split at seams map back onto the source vertices of the same face corners.
    assert np.allclose(atlas.vertices[atlas.faces], mesh.vertices[mesh.faces])
    r = rasterize(atlas.uv, atlas.faces, params.texture_size)
    assert len(_overlapping_faces(r, params.texture_size)) == 0
    coverage = len(np.unique(r.row * params.texture_size + r.col)) / params.texture_size**2
    assert coverage > 0.2  # the charts use a fair share of the texture


def test_baked_texture_reproduces_the_colour_field() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    atlas = unwrap(mesh, PARAMS)
    image = bake_texture(atlas, gradient, PARAMS.texture_size)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    # Sample the texture at face centroids' UVs and compare with the field there.
    uv = atlas.uv[atlas.faces].mean(axis=1)
    col = np.clip((uv[:, 0] * 256).astype(int), 0, 255)
    row = np.clip((uv[:, 1] * 256).astype(int), 0, 255)
    expected = gradient(atlas.vertices[atlas.faces].mean(axis=1), np.zeros((len(uv), 3)))
    error = np.abs(image[row, col].astype(int) - expected[:, :3].astype(int))
    assert np.median(error) <= 3
    assert np.percentile(error, 95) <= 12


@pytest.mark.parametrize("seed", range(6))
def test_gutter_texels_copy_a_nearest_chart_texel(seed: int) -> None:
    """OpenCV's labelled chamfer transform against scipy's exact one: a chart texel maps to
    itself, every gutter texel to a chart texel, exactly as near as the nearest one within
    the few texels filtering reads, and never much farther anywhere."""
    rng = np.random.default_rng(seed)
    filled = ndimage.binary_dilation(
        rng.random((200, 200)) < rng.uniform(0.001, 0.01), iterations=int(rng.integers(0, 5))
    )
    nearest = nearest_filled(filled)
    assert filled.ravel()[nearest.ravel()].all()
    assert np.array_equal(nearest[filled], np.flatnonzero(filled))
    rows, cols = np.divmod(nearest, 200)
    chosen = np.hypot(rows - np.arange(200)[:, None], cols - np.arange(200)[None, :])
    exact = ndimage.distance_transform_edt(~filled)
    assert np.array_equal(chosen[exact <= 4], exact[exact <= 4])
    assert (chosen - exact).max() < 0.1 * exact.max() + 1.0


def test_texel_interpolation_is_einsums_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 3)) * 40.0
    corners = rng.integers(0, 50, size=(1000, 3))
    bary = rng.dirichlet(np.ones(3), size=1000)
    expected = np.einsum("kc,kcd->kd", bary, values[corners])
    assert np.array_equal(_interpolated(values, corners, bary), expected)


def test_vertex_colours_drive_the_multicolor_texture() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    colors = np.where(mesh.vertices[:, :1] > 0, [[230, 20, 20, 255]], [[20, 20, 230, 255]])
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colors.astype(np.uint8))
    source, kind = color_source_from_visual(mesh)
    assert kind == "vertex" and source is not None
    result = process_mesh(mesh, PARAMS)
    assert result.report.color_source == "vertex"
    texture = result.texture()
    reds = (texture[..., 0] > 200) & (texture[..., 2] < 60)
    blues = (texture[..., 2] > 200) & (texture[..., 0] < 60)
    assert reds.mean() > 0.2 and blues.mean() > 0.2


def test_colored_mesh_from_a_reconstructor_is_accepted() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    colored = ColoredMesh(vertices=sphere.vertices, faces=sphere.faces, color_source=gradient)
    result = process_mesh(colored, PARAMS)
    assert result.report.color_source == "callable"
    assert result.report.watertight and result.report.shells == 1
    glb = export_glb(result, mode="multicolor")
    assert glb[:4] == b"glTF"

    with_vc = ColoredMesh(
        vertices=sphere.vertices,
        faces=sphere.faces,
        vertex_colors=np.full((len(sphere.vertices), 4), 200, np.uint8),
    )
    assert process_mesh(with_vc, PARAMS).report.color_source == "vertex"


def test_vertex_colour_source_interpolates_between_neighbours() -> None:
    points = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    source = vertex_color_source(points, np.array([[0, 0, 0, 255], [200, 100, 50, 255]]), k=2)
    mid = source(np.array([[0.5, 0, 0], [1.0, 0, 0]]), np.zeros((2, 3)))
    assert mid[0].tolist() == [100, 50, 25, 255]
    assert mid[1].tolist() == [200, 100, 50, 255]


def test_srgb_to_linear_matches_the_standard() -> None:
    assert float(srgb_to_linear(0.0)) == 0.0
    assert float(srgb_to_linear(1.0)) == pytest.approx(1.0)
    assert float(srgb_to_linear(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert float(srgb_to_linear(0.04)) == pytest.approx(0.04 / 12.92)
    assert hex_to_linear_rgb("#808080")[0] == pytest.approx(0.21586, abs=1e-5)
    assert hex_to_linear_rgb("#FF0000") == pytest.approx((1.0, 0.0, 0.0))


@pytest.mark.parametrize("bad", ["red", "#12345", "#GGGGGG", "123456", "#1234567"])
def test_bad_colour_is_rejected_naming_the_value(bad: str) -> None:
    from sculptsvc.mesh.colors import parse_hex

    with pytest.raises(InvalidEvent, match="RRGGBB"):
        parse_hex(bad)


def _bumpy(diagonal: float) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    v = sphere.vertices
    v = v * (1 + 0.15 * np.sin(5 * v[:, :1]) * np.cos(4 * v[:, 1:2])) * np.array([1, 0.6, 1.4])
    return trimesh.Trimesh(v * (diagonal / np.linalg.norm(np.ptp(v, axis=0))), sphere.faces)


@pytest.mark.parametrize("diagonal", [0.01, 0.1, 100.0])
def test_unwrap_packs_the_same_charts_whatever_the_unit(diagonal: float) -> None:
    """A 1 cm figurine in metres (glTF's unit) has UV triangles below xatlas's absolute
    area epsilon; they were packed on top of each other and the atlas never fitted."""
    params = MeshParams()
    atlas = unwrap(_bumpy(diagonal), params)
    reference = unwrap(_bumpy(100.0), params)
    assert atlas.charts == reference.charts
    assert atlas.overlap_passes == 0
    r = rasterize(atlas.uv, atlas.faces, params.texture_size)
    assert len(_overlapping_faces(r, params.texture_size)) == 0
    assert len(r.face) == pytest.approx(len(reference.raster.face), rel=0.01)


def _assert_one_clean_atlas(mesh: trimesh.Trimesh, atlas: object, size: int) -> None:
    assert len(atlas.faces) == len(mesh.faces)
    assert (atlas.uv >= 0).all() and (atlas.uv <= 1).all()
    assert np.allclose(atlas.vertices[atlas.faces], mesh.vertices[mesh.faces])
    r = rasterize(atlas.uv, atlas.faces, size)
    assert len(_overlapping_faces(r, size)) == 0
    assert len(np.unique(r.face)) > 0.9 * len(mesh.faces)  # faces keep texels of their own


def test_a_thin_ring_packs_below_its_area_density() -> None:
    """A washer or bangle: its flat faces are one ring-shaped chart each, whose bounding box
    is 40x its area. At the density the area asks for it never fitted (8 tries down to
    0.43x): ``UV charts do not fit one atlas``, and the order failed."""
    ring = trimesh.creation.annulus(r_min=40.0, r_max=41.0, height=0.5, sections=256)
    params = MeshParams()
    atlas = unwrap(ring, params)
    assert atlas.overlap_passes == 0 and atlas.charts <= 16  # the projection's own charts
    _assert_one_clean_atlas(ring, atlas, params.texture_size)


def threaded_rod(around: int = 48, along: int = 60) -> trimesh.Trimesh:
    """A closed rod with a helical thread, as a screw: its surface folds in every axis
    projection, on most faces."""
    theta, z = np.meshgrid(
        np.linspace(0, 2 * np.pi, around, endpoint=False), np.linspace(0, 10, along)
    )
    radius = 3.0 + 0.5 * np.sin(theta - 2 * np.pi * z / 0.7)
    ring = np.column_stack(
        [(radius * np.cos(theta)).ravel(), (radius * np.sin(theta)).ravel(), z.ravel()]
    )
    i, j = np.meshgrid(np.arange(along - 1), np.arange(around), indexing="ij")
    a, b = i * around + j, i * around + (j + 1) % around
    c, d = a + around, b + around
    sides = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    bottom, top = len(ring), len(ring) + 1
    k = np.arange(around)
    caps = np.concatenate(
        [
            np.column_stack([np.full(around, bottom), (k + 1) % around, k]),
            np.column_stack(
                [
                    np.full(around, top),
                    (along - 1) * around + k,
                    (along - 1) * around + (k + 1) % around,
                ]
            ),
        ]
    )
    vertices = np.vstack([ring, [0.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    return trimesh.Trimesh(vertices, np.concatenate([sides, caps]), process=False)


def test_a_screw_thread_that_folds_everywhere_gets_xatlas_charts() -> None:
    """Splitting the folded faces of a thread made each its own chart, thousands of them,
    which no atlas held (``UV charts do not fit one atlas`` on PrusaSlicer's M3 screw).
    xatlas charts such a surface itself, under the same no-overlap check."""
    rod = threaded_rod()
    assert rod.is_watertight and rod.volume > 0
    params = MeshParams()
    atlas = unwrap(rod, params)
    assert atlas.overlap_passes >= 1  # the projection folded first
    assert atlas.charts < params.uv_max_charts
    _assert_one_clean_atlas(rod, atlas, params.texture_size)


def helical_ramp(turns: float = 1.5, around: int = 96, across: int = 6) -> trimesh.Trimesh:
    """A spiral ramp: every face looks up (one +z chart), and after one turn its projection
    lies over itself: the fold of an ear curling back, on a known set of faces."""
    theta = np.linspace(0.0, 2 * np.pi * turns, int(around * turns) + 1)
    t, r = np.meshgrid(theta, np.linspace(10.0, 20.0, across), indexing="ij")
    vertices = np.column_stack([(r * np.cos(t)).ravel(), (r * np.sin(t)).ravel(), t.ravel()])
    i, j = np.meshgrid(np.arange(len(theta) - 1), np.arange(across - 1), indexing="ij")
    a = i * across + j
    b, c = a + 1, a + across
    faces = np.concatenate([np.stack([a, b, c + 1], -1), np.stack([a, c + 1, c], -1)])
    return trimesh.Trimesh(vertices, faces.reshape(-1, 3), process=False)


def test_folds_are_split_before_the_first_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nearly every scanned mesh folds somewhere (7 of the 8 corpus meshes): found only after
    packing, each was packed and rasterised twice (~0.25 s). Found before, it packs once;
    the check after packing still finds no texel claimed twice."""
    ramp = helical_ramp()
    assert ramp.face_normals[:, 2].min() > 0.99  # one chart, no face turned away
    rasters = []
    monkeypatch.setattr(
        uv_module, "rasterize", lambda *a, **k: rasters.append(1) or rasterize(*a, **k)
    )
    params = MeshParams()
    atlas = unwrap(ramp, params)
    assert len(rasters) == 1  # packed once: its raster checked and kept for the bake
    assert atlas.overlap_passes == 1
    # the half turn that lies over the first: 2 x 48 steps x 5 bands x 2 triangles, alone
    assert atlas.charts == 1 + 2 * 48 * 5 * 2
    _assert_one_clean_atlas(ramp, atlas, params.texture_size)


def test_only_projections_that_overlap_are_folds() -> None:
    """Neighbours that share an edge or a corner touch without overlapping; an overlap less
    deep than the limit is not a fold; faces of different charts may overlap (they are
    packed apart)."""
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tris = [
        square[[0, 1, 2]],  # 0 and 1: one square, sharing the diagonal
        square[[0, 2, 3]],
        square[[2, 3, 0]] + [1.0, 1.0],  # 2: touches 0 and 1 at a corner only
        square[[0, 1, 2]] + [0.5, 0.0],  # 3: overlaps 0 deeply
        square[[0, 1, 2]] + [-0.9995, 0.0],  # 4: overlaps 1 by 0.0005 only
        square[[0, 1, 2]] + [0.2, 0.2],  # 5: overlaps 0, 1 and 3, but is another chart
    ]
    chart = np.array([0, 0, 0, 0, 0, 1])
    assert _folded_faces(np.array(tris), chart, min_overlap=0.001).tolist() == [0, 3]
    assert _folded_faces(np.array(tris), chart, min_overlap=0.0).tolist() == [0, 1, 3, 4]


def _brute_force_folds(tris: np.ndarray, chart: np.ndarray, min_overlap: float) -> list[int]:
    """Every pair of the same chart, separated by no edge normal (the same exact test)."""
    folded: set[int] = set()
    for a in range(len(tris)):
        for b in range(a + 1, len(tris)):
            if chart[a] != chart[b]:
                continue
            depth = np.inf
            for poly in (tris[a], tris[b]):
                for i in range(3):
                    edge = poly[(i + 1) % 3] - poly[i]
                    normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)
                    qa, qb = tris[a] @ normal, tris[b] @ normal
                    depth = min(depth, min(qa.max(), qb.max()) - max(qa.min(), qb.min()))
            if depth > min_overlap:
                folded |= {a, b}
    return sorted(folded)


def test_folds_are_found_among_faces_of_very_different_sizes() -> None:
    """A plate's few long flat triangles beside thousands of small ones spanned millions of
    the search grid's median-sized cells (15 s for one bed model): the grid coarsens until
    it holds a few cells per face, and finds exactly the pairs a full search finds."""
    rng = np.random.default_rng(7)
    small = rng.uniform(0.0, 20.0, size=(300, 1, 2)) + rng.uniform(-0.05, 0.05, size=(300, 3, 2))
    long = np.array(
        [
            [[0.0, 1.0], [20.0, 1.2], [0.0, 1.4]],  # slivers across the whole field
            [[0.5, 5.0], [19.0, 5.1], [19.0, 5.3]],
            [[3.0, 0.0], [3.3, 0.0], [3.1, 19.0]],
        ]
    )
    tris = np.concatenate([small, long])
    chart = np.zeros(len(tris), dtype=np.int64)
    chart[::7] = 1
    expected = _brute_force_folds(tris, chart, 1e-4)
    assert any(i >= 300 for i in expected)  # the long faces do overlap small ones
    assert _folded_faces(tris, chart, 1e-4).tolist() == expected


class _RecordingJob:
    """An atlas 'made elsewhere' (here, at once): what a stage helper's Pending returns."""

    def __init__(self, mesh: trimesh.Trimesh, params: MeshParams, log: list[str]) -> None:
        self.atlas = uv_module.unwrap_arrays((np.asarray(mesh.vertices), mesh.faces, params))
        self.log = log

    def result(self) -> tuple[uv_module.UVAtlas, float]:
        self.log.append("used")
        return self.atlas, 0.25


def test_an_atlas_made_elsewhere_is_the_one_made_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """``process_mesh(unwrap_elsewhere=...)`` starts the atlas on the budgeted triangles as
    the GLB stores them; when the check passes them unchanged, that atlas is used and the
    GLB is the same bytes. When a repair changes them, the atlas is made again here."""
    import sculptsvc.mesh.pipeline as pipeline

    params = MeshParams(target_faces=2_000)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    sphere.visual.vertex_colors = (sphere.vertices * 10 + 128).clip(0, 255).astype(np.uint8)
    log: list[str] = []

    def elsewhere(mesh: trimesh.Trimesh) -> _RecordingJob:
        return _RecordingJob(mesh, params, log)

    helped = process_mesh(sphere, params, unwrap_elsewhere=elsewhere)
    glb = export_glb(helped)
    assert log == ["used"] and helped.timings["uv"] == 0.25
    assert glb == export_glb(process_mesh(sphere, params))

    real = pipeline._without_self_intersections

    def repaired(mesh, *args):  # type: ignore[no-untyped-def]
        final, budget, displacement, crossing = real(mesh, *args)
        moved = trimesh.Trimesh(final.vertices * 1.5, final.faces, process=False)
        return moved, budget, displacement, crossing

    monkeypatch.setattr(pipeline, "_without_self_intersections", repaired)
    log.clear()
    changed = process_mesh(sphere, params, unwrap_elsewhere=elsewhere)
    atlas = changed.atlas()
    assert log == []  # the atlas of the old triangles was not used
    assert np.allclose(atlas.vertices.max(axis=0), changed.mesh.vertices.max(axis=0))
