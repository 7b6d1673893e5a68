"""Classic reconstructor: one closed, outward-oriented shell whose front projection is the
mask, round inflation profiles, bounded relief, projected texture, determinism."""

from __future__ import annotations

import pickle

import manifold3d
import numpy as np
import pytest
import trimesh

from sculptsvc.errors import NoSubject
from sculptsvc.reconstruct.base import ColoredMesh, Reconstructor
from sculptsvc.reconstruct.classic import (
    ClassicReconstructor,
    InflateParams,
    ProjectedTexture,
    _BilinearTaps,
    silhouette_iou,
)
from sculptsvc.stylize.base import StylizedImage

H, W = 300, 400


def stylized(mask: np.ndarray, colour: tuple[int, int, int] = (220, 60, 40)) -> StylizedImage:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = (*colour, 255)
    return StylizedImage(rgba=rgba, mask=mask)


def ellipse_mask(cx: float = 200, cy: float = 150, rx: float = 150, ry: float = 100) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1


def as_trimesh(mesh: ColoredMesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


def assert_one_closed_shell(mesh: ColoredMesh) -> None:
    tm = as_trimesh(mesh)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.body_count == 1
    assert tm.volume > 0  # outward normals
    solid = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=mesh.vertices.astype(np.float32),
            tri_verts=mesh.faces.astype(np.uint32),
        )
    )
    assert solid.status() == manifold3d.Error.NoError


def test_classic_reconstructor_implements_the_seam() -> None:
    reconstructor: Reconstructor = ClassicReconstructor()
    assert reconstructor.name == "classic"


def test_ellipse_becomes_one_closed_shell_with_its_outline() -> None:
    mask = ellipse_mask()
    mesh = ClassicReconstructor().reconstruct(stylized(mask), seed=0)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    assert_one_closed_shell(mesh)
    assert silhouette_iou(mesh.vertices, mesh.faces, mask) > 0.97
    # Units are image pixels: x spans the ellipse, y is up, z is centred on the mid plane.
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert lo[0] == pytest.approx(50, abs=3) and hi[0] == pytest.approx(350, abs=3)
    assert lo[1] == pytest.approx(50, abs=3) and hi[1] == pytest.approx(250, abs=3)
    assert hi[2] == pytest.approx(-lo[2], rel=0.02)  # uniform colour: no relief, symmetric


def test_y_points_up() -> None:
    mask = ellipse_mask(cy=70, ry=50, rx=100)  # in the image's top rows
    mesh = ClassicReconstructor().reconstruct(stylized(mask), seed=0)
    assert mesh.vertices[:, 1].min() > H / 2


def test_a_limb_gets_a_round_cross_section() -> None:
    # Poisson inflation: a bar 2w wide gets ~w of depth per side, however big the rest.
    mask = np.zeros((H, W), bool)
    mask[130:170, 20:380] = True  # w = 20
    params = InflateParams(min_half_depth=0.0)
    mesh = ClassicReconstructor(params).reconstruct(stylized(mask), seed=0)
    half_depth = mesh.vertices[:, 2].max()
    assert half_depth == pytest.approx(20, rel=0.12)


def test_depth_is_capped_for_big_flat_subjects() -> None:
    mask = ellipse_mask(rx=148, ry=148)
    params = InflateParams()
    mesh = ClassicReconstructor(params).reconstruct(stylized(mask), seed=0)
    assert mesh.vertices[:, 2].max() <= params.max_half_depth * W + 1.0


def test_relief_is_bounded_and_on_the_front_only() -> None:
    mask = ellipse_mask()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[mask] = (200, 200, 200, 255)
    y, x = np.mgrid[0:H, 0:W]
    rgba[(x // 25 + y // 25) % 2 == 0, :3] = 40  # a checkerboard of dark patches
    rgba[~mask] = 0
    params = InflateParams()
    flat = ClassicReconstructor(InflateParams(relief_amplitude=0.0)).reconstruct(
        stylized(mask), seed=0
    )
    relief = ClassicReconstructor(params).reconstruct(StylizedImage(rgba, mask), seed=0)
    assert_one_closed_shell(relief)
    bound = params.relief_amplitude * W
    front_gain = relief.vertices[:, 2].max() - flat.vertices[:, 2].max()
    assert abs(front_gain) <= bound + 1.0
    assert relief.vertices[:, 2].min() == pytest.approx(flat.vertices[:, 2].min(), abs=1.0)
    assert relief.vertices[:, 2].std() != pytest.approx(flat.vertices[:, 2].std(), abs=1e-3)


def test_only_the_largest_shell_is_returned() -> None:
    mask = ellipse_mask(cx=150, rx=100, ry=80) | ellipse_mask(cx=340, rx=30, ry=30)
    mesh = ClassicReconstructor().reconstruct(stylized(mask), seed=0)
    assert_one_closed_shell(mesh)
    assert mesh.vertices[:, 0].max() < 260


def test_shape_with_a_hole_stays_one_closed_shell() -> None:
    y, x = np.mgrid[0:H, 0:W]
    ring = ellipse_mask() & (((x - 200) / 60) ** 2 + ((y - 150) / 40) ** 2 > 1)
    mesh = ClassicReconstructor().reconstruct(stylized(ring), seed=0)
    assert_one_closed_shell(mesh)
    assert as_trimesh(mesh).euler_number == 0  # a torus: genus 1
    assert silhouette_iou(mesh.vertices, mesh.faces, ring) > 0.95


def test_texture_is_projected_front_and_back() -> None:
    mask = ellipse_mask()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[mask] = (255, 0, 0, 255)
    rgba[mask & (np.mgrid[0:H, 0:W][1] > 200)] = (0, 0, 255, 255)  # right half blue
    mesh = ClassicReconstructor().reconstruct(StylizedImage(rgba, mask), seed=0)
    source = mesh.color_source
    assert isinstance(source, ProjectedTexture)
    points = np.array([[120.0, 150.0, 40.0], [300.0, 150.0, 40.0], [120.0, 150.0, -40.0]])
    normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    colours = source(points, normals)
    assert colours.dtype == np.uint8 and colours.shape == (3, 4)
    assert tuple(colours[0]) == (255, 0, 0, 255)
    assert tuple(colours[1]) == (0, 0, 255, 255)
    assert colours[2, 0] > 200  # the back shows the same region's colour
    # Points just outside the outline (the rounded sides) get the edge colour, not black.
    edge = source(np.array([[49.0, 150.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]]))
    assert edge[0, 0] > 200
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == (
        len(mesh.vertices),
        4,
    )
    # It crosses process boundaries (the worker pool) intact.
    clone = pickle.loads(pickle.dumps(source))
    assert np.array_equal(clone(points, normals), colours)


def test_same_input_gives_identical_arrays() -> None:
    image = stylized(ellipse_mask())
    a = ClassicReconstructor().reconstruct(image, seed=1)
    b = ClassicReconstructor().reconstruct(image, seed=1)
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert a.vertex_colors is not None and b.vertex_colors is not None
    assert np.array_equal(a.vertex_colors, b.vertex_colors)


def test_empty_mask_is_no_subject() -> None:
    with pytest.raises(NoSubject):
        ClassicReconstructor().reconstruct(stylized(np.zeros((H, W), bool)), seed=0)


def test_grid_size_sets_the_detail() -> None:
    image = stylized(ellipse_mask())
    coarse = ClassicReconstructor(InflateParams(grid_size=64)).reconstruct(image, seed=0)
    fine = ClassicReconstructor(InflateParams(grid_size=128)).reconstruct(image, seed=0)
    assert 3 < len(fine.faces) / len(coarse.faces) < 5  # area-like growth


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_bilinear_samples_equal_the_float64_formula_bit_for_bit(dtype: type) -> None:
    """The sampler gathers texels in the image's dtype and sums in place: the result must be
    the plain float64 formula's, to the last bit (the texture bytes depend on it)."""
    rng = np.random.default_rng(4)
    image = (rng.random((37, 53, 6)) * 255).astype(dtype)
    rows = rng.random(5000) * 45 - 4  # past the edges too: clamped
    cols = rng.random(5000) * 60 - 3
    taps = _BilinearTaps.at(image.shape[:2], rows, cols)
    flat = image.reshape(-1, 6).astype(np.float64)
    fr, fc = taps.fr, taps.fc
    top = flat[taps.i00] * (1 - fc) + flat[taps.i01] * fc
    bottom = flat[taps.i10] * (1 - fc) + flat[taps.i11] * fc
    expected = top * (1 - fr) + bottom * fr
    got = taps.sample(image)
    assert got.dtype == np.float64
    assert np.array_equal(got, expected)
    assert np.array_equal(got[:, :3], taps.sample(np.ascontiguousarray(image[..., :3])))


def test_a_subject_filling_its_picture_gets_coarser_cells_not_more_triangles() -> None:
    """Faces grow with the cells inside the outline: a small subject keeps the full grid,
    one filling the picture is capped near ``max_inside_cells`` (the logo of the corpus:
    147k raw faces, 7x what the mesh stage keeps, before the cap)."""
    params = InflateParams(grid_size=80, max_inside_cells=1500)
    small = ellipse_mask(rx=60, ry=40)  # ~470 cells at 80 across: under the cap
    large = ellipse_mask(rx=199, ry=149)  # ~2900 cells at 80 across: over it
    small_mesh = ClassicReconstructor(params).reconstruct(stylized(small), seed=0)
    uncapped = InflateParams(grid_size=80, max_inside_cells=10**9)
    large_mesh = ClassicReconstructor(params).reconstruct(stylized(large), seed=0)
    large_uncapped = ClassicReconstructor(uncapped).reconstruct(stylized(large), seed=0)
    small_uncapped = ClassicReconstructor(uncapped).reconstruct(stylized(small), seed=0)
    assert np.array_equal(small_mesh.faces, small_uncapped.faces)  # untouched below the cap
    ratio = len(large_mesh.faces) / len(large_uncapped.faces)
    assert 0.4 < ratio < 0.6  # ~1500 / 2900 of the cells, so of the faces
    assert_one_closed_shell(large_mesh)
    assert silhouette_iou(large_mesh.vertices, large_mesh.faces, large) > 0.97
