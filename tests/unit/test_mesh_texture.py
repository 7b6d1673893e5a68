"""UV atlas (no overlaps, all faces mapped), rasteriser, texture baking and colour sources."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from sculptsvc.errors import InvalidEvent
from sculptsvc.mesh import MeshParams, export_glb, process_mesh
from sculptsvc.mesh.colors import (
    color_source_from_visual,
    hex_to_linear_rgb,
    srgb_to_linear,
    vertex_color_source,
)
from sculptsvc.mesh.uv import _overlapping_faces, bake_texture, rasterize, unwrap
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
