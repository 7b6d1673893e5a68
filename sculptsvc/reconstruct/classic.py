"""Weight-free reconstructor: inflate the silhouette into a rounded, closed, textured solid.

1. Height field: solve the Poisson equation ``lap(u) = -1`` inside the silhouette with
   ``u = 0`` on its outline and take ``h = sqrt(2 u)``. A limb of any width gets a round
   cross-section and a disc an ellipsoid (the "Ink-and-Ray" inflation, Sykora et al. 2014),
   where a plain distance transform would make thin parts as deep as the body.
2. Bounds: a soft cap (tanh) keeps big flat subjects (a logo) lens-shaped rather than
   spherical, and a soft floor thickens thin parts enough to cast.
3. Relief: the picture's luminance detail (high-pass) adds a little height on the front,
   fading out towards the outline, so eyes and seams read on the sculpture.
4. Surface: the solid ``-h_back(x, y) <= z <= h_front(x, y)`` is sampled as an implicit
   function on a voxel grid whose border is outside, and marching cubes extracts its
   boundary: closed and consistently oriented by construction; the largest shell is kept
   and checked with manifold3d.
5. Texture: the stylized picture, projected along z (front) and a detail-free blur of it
   (back), as a ``ColorSource``.

Units: pixels of the stylized image, x right, y up, z toward the viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import manifold3d
import numpy as np
import trimesh
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve
from skimage.measure import marching_cubes

from sculptsvc.errors import ModelOutputInvalid, NoSubject
from sculptsvc.logging import get_logger
from sculptsvc.reconstruct.base import ColoredMesh
from sculptsvc.stylize.base import StylizedImage

log = get_logger(__name__)


@dataclass(frozen=True)
class InflateParams:
    """Tunables of the inflation; lengths are fractions of the picture's longest side."""

    grid_size: int = 160
    """Voxels across the longest side: ~2-3x the triangles the mesh stage keeps."""
    max_inside_cells: int = 10_000
    """At most this many grid cells inside the outline: a subject that fills its picture
    (a logo, a wide animal) gets coarser cells, so the raw surface stays near 4x the
    triangles the mesh stage keeps (about 9 faces per inside cell) instead of growing
    to 7x, which the mesh stage would only spend time decimating again."""
    depth_scale: float = 1.0
    """1 gives limbs round cross-sections; the whole solid's depth scales with it."""
    max_half_depth: float = 0.16
    """Soft cap of the depth on each side of the middle plane."""
    min_half_depth: float = 0.015
    """Soft floor of the depth on each side where the part is at least this far inside."""
    back_depth_ratio: float = 1.0
    """Depth of the back relative to the front (below 1: flatter back)."""
    relief_amplitude: float = 0.006
    """Height of the luminance relief (bright raised, dark recessed)."""
    relief_sigma: float = 0.012
    """Scale of the detail that becomes relief (high-pass cut-off)."""
    relief_fade: float = 0.04
    """The relief fades out within this distance of the outline."""
    smooth_cells: float = 0.7
    """Gaussian smoothing of the height fields, in voxels (removes grid stair-steps)."""
    back_texture_blur: float = 0.03
    """The back shows the front's colours blurred by this much (no face on the back)."""


@dataclass(frozen=True)
class ProjectedTexture:
    """``ColorSource`` projecting the picture along z: front and back images blended by
    the normal's z. Picklable (plain arrays), so it can cross process boundaries.

    front, back: (h, w, 3) uint8 in the mesh's units (one pixel = one unit, y up).
    """

    front: np.ndarray
    back: np.ndarray
    blend_width: float = 0.35
    """Normal-z band over which front and back colours cross-fade (the sides)."""

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """points, normals: (n, 3) float -> (n, 4) uint8 RGBA."""
        points = np.asarray(points, dtype=np.float64)
        normals = np.asarray(normals, dtype=np.float64)
        h = self.front.shape[0]
        cols = points[:, 0] - 0.5
        rows = (h - points[:, 1]) - 0.5
        taps = _BilinearTaps.at(self.front.shape[:2], rows, cols)
        # one gather per corner for both images (the same products as one at a time)
        both = taps.sample(np.concatenate([self.front, self.back], axis=2))
        front, back = both[:, : self.front.shape[2]], both[:, self.front.shape[2] :]
        t = np.clip((normals[:, 2] + self.blend_width) / (2.0 * self.blend_width), 0.0, 1.0)
        weight = (t * t * (3.0 - 2.0 * t))[:, None]
        rgb = weight * front + (1.0 - weight) * back
        out = np.empty((len(points), 4), dtype=np.uint8)
        out[:, :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        out[:, 3] = 255
        return out


def picture_texture(
    image: StylizedImage, back_blur: float = InflateParams.back_texture_blur
) -> ProjectedTexture:
    """The stylized picture as a front/back ``ProjectedTexture`` in its pixel units (y up);
    the back shows the front blurred by ``back_blur`` of the longest side. AI reconstructors
    project it onto their shapes too."""
    texture = _albedo(image)
    return ProjectedTexture(
        front=texture, back=_blur_rgb(texture, back_blur * max(texture.shape[:2]))
    )


class ClassicReconstructor:
    """The ``Reconstructor`` that needs no weights and no GPU (see the module docstring)."""

    name = "classic"

    def __init__(self, params: InflateParams | None = None) -> None:
        self.params = params or InflateParams()

    def reconstruct(self, image: StylizedImage, *, seed: int) -> ColoredMesh:
        """Deterministic: ``seed`` is accepted for the seam and not needed."""
        return inflate(image, params=self.params)

    def reshaped(self, *, relief_depth: float, thickness: float) -> ClassicReconstructor:
        """This reconstructor with the relief and the depth multiplied (an order's shape
        options). Depth, its soft floor and its soft cap scale together, so the solid's
        heights are ``thickness`` times the default ones (before the relief), except in the
        thin band by the outline where the floor blends in (within a few per cent there)."""
        p = self.params
        return ClassicReconstructor(
            replace(
                p,
                relief_amplitude=p.relief_amplitude * relief_depth,
                depth_scale=p.depth_scale * thickness,
                min_half_depth=p.min_half_depth * thickness,
                max_half_depth=p.max_half_depth * thickness,
            )
        )


def inflate(image: StylizedImage, *, params: InflateParams | None = None) -> ColoredMesh:
    """Stylized image -> one closed, outward-oriented, textured shell (see module doc)."""
    p = params or InflateParams()
    mask = np.asarray(image.mask, dtype=bool)
    if not mask.any():
        raise NoSubject("the stylized image has an empty subject mask")
    texture = _albedo(image)
    h_px, w_px = mask.shape
    longest = float(max(h_px, w_px))
    cell = longest / p.grid_size
    inside_cells = float(mask.sum()) / cell**2
    if inside_cells > p.max_inside_cells:
        cell *= float(np.sqrt(inside_cells / p.max_inside_cells))

    front, back = height_fields(mask, texture, cell=cell, params=p)
    vertices, faces = _surface(front, back, cell=cell, image_height=h_px)
    vertices, faces = _largest_shell(vertices, faces)
    _check_solid(vertices, faces)

    source = ProjectedTexture(front=texture, back=_blur_rgb(texture, p.back_texture_blur * longest))
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    log.debug("inflated", vertices=len(vertices), faces=len(faces), cell_px=round(cell, 3))
    return ColoredMesh(
        vertices=vertices,
        faces=faces,
        vertex_colors=source(vertices, normals),
        color_source=source,
    )


def height_fields(
    mask: np.ndarray, texture: np.ndarray, *, cell: float, params: InflateParams
) -> tuple[np.ndarray, np.ndarray]:
    """Front and back heights on the voxel grid, in pixels; negative outside the outline.

    Returns two (rows, cols) float64 arrays sampled at cell centres, with a border of
    outside cells (so the solid is closed) of ``_PAD`` cells.
    """
    p = params
    h_px, w_px = mask.shape
    longest = float(max(h_px, w_px))
    rows = int(np.ceil(h_px / cell))
    cols = int(np.ceil(w_px / cell))
    # Signed distance at full resolution, sampled at the cell centres.
    signed = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
    signed = signed + np.where(mask, -0.5, 0.5)
    ry = (np.arange(rows) + 0.5) * cell - 0.5
    rx = (np.arange(cols) + 0.5) * cell - 0.5
    grid_y, grid_x = np.meshgrid(ry, rx, indexing="ij")
    sd = ndimage.map_coordinates(signed, [grid_y, grid_x], order=1, mode="nearest")
    inside = sd > 0
    if inside.sum() < 4:
        raise NoSubject("the subject is too small to sculpt at this resolution")

    u = _poisson(inside, cell)
    height = p.depth_scale * np.sqrt(2.0 * u)
    floor = p.min_half_depth * longest
    if floor > 0:
        s = np.clip(sd / floor, 0.0, 1.0)
        height = np.sqrt(height**2 + floor**2 * (s * s * (3.0 - 2.0 * s)))
    cap = p.max_half_depth * longest
    height = cap * np.tanh(height / cap)

    if p.smooth_cells > 0:
        height = _smooth_inside(height, inside, p.smooth_cells)
    relief = _relief(texture, grid_y, grid_x, sd, longest, p)
    front = _extend_outside(height + relief, inside, sd)
    back = _extend_outside(height * p.back_depth_ratio, inside, sd)
    pad_value = min(float(front.min()), float(back.min()), 0.0) - _PAD * cell
    front = np.pad(front, _PAD, mode="constant", constant_values=pad_value)
    back = np.pad(back, _PAD, mode="constant", constant_values=pad_value)
    return front, back


_PAD = 2


def _smooth_inside(height: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that averages inside cells only (the outline does not move)."""
    weight = ndimage.gaussian_filter(inside.astype(np.float64), sigma)
    total = ndimage.gaussian_filter(np.where(inside, height, 0.0), sigma)
    return np.where(inside, total / np.maximum(weight, 1e-9), 0.0)


def _extend_outside(height: np.ndarray, inside: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Continue a height field past the outline as its mirror image, ``-k sqrt(-sd)``.

    Inflated heights rise like ``sqrt(distance)`` at the outline; with plain distances
    outside, marching cubes' linear interpolation would place the outline up to a voxel
    too far out. Mirroring the profile (``k`` from the nearest inside cell) puts the zero
    crossing where the picture's outline is.
    """
    iy, ix = ndimage.distance_transform_edt(~inside, return_distances=False, return_indices=True)
    near_height = height[iy, ix]
    near_sd = np.maximum(sd[iy, ix], 1e-6)
    k = np.maximum(near_height, 0.0) / np.sqrt(near_sd)
    outside = -k * np.sqrt(np.maximum(-sd, 0.0)) - 1e-6
    return np.where(inside, height, outside)


def _poisson(inside: np.ndarray, cell: float) -> np.ndarray:
    """Solve lap(u) = -1 on the cells ``inside`` (5-point stencil), u = 0 outside."""
    index = -np.ones(inside.shape, dtype=np.int64)
    n = int(inside.sum())
    index[inside] = np.arange(n)
    padded = np.pad(index, 1, constant_values=-1)
    centre = padded[1:-1, 1:-1]
    rows_list = [np.arange(n)]
    cols_list = [np.arange(n)]
    data_list = [np.full(n, 4.0)]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        both = (centre >= 0) & (neighbour >= 0)
        rows_list.append(centre[both])
        cols_list.append(neighbour[both])
        data_list.append(np.full(int(both.sum()), -1.0))
    matrix = sparse.csc_matrix(
        (np.concatenate(data_list), (np.concatenate(rows_list), np.concatenate(cols_list))),
        shape=(n, n),
    )
    solution = spsolve(matrix, np.full(n, cell * cell))
    u = np.zeros(inside.shape, dtype=np.float64)
    u[inside] = np.maximum(solution, 0.0)
    return u


def _relief(
    texture: np.ndarray,
    grid_y: np.ndarray,
    grid_x: np.ndarray,
    sd: np.ndarray,
    longest: float,
    p: InflateParams,
) -> np.ndarray:
    """Bounded relief from luminance detail: tanh-limited high-pass, faded at the outline."""
    if p.relief_amplitude <= 0:
        return np.zeros_like(sd)
    lum = texture.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722]) / 255.0
    detail = lum - ndimage.gaussian_filter(lum, p.relief_sigma * longest)
    detail = ndimage.gaussian_filter(detail, 0.25 * p.relief_sigma * longest)
    sampled = ndimage.map_coordinates(detail, [grid_y, grid_x], order=1, mode="nearest")
    fade = np.clip(sd / (p.relief_fade * longest), 0.0, 1.0)
    fade = fade * fade * (3.0 - 2.0 * fade)
    return p.relief_amplitude * longest * np.tanh(sampled / 0.08) * fade


def _surface(
    front: np.ndarray, back: np.ndarray, *, cell: float, image_height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of ``min(front - z, back + z) = 0``; vertices in image units, y up."""
    z_top = float(front.max()) + _PAD * cell
    z_bottom = float(back.max()) + _PAD * cell
    z = np.arange(-np.ceil(z_bottom / cell), np.ceil(z_top / cell) + 1) * cell
    volume = np.minimum(front[:, :, None] - z[None, None, :], back[:, :, None] + z[None, None, :])
    volume = volume.astype(np.float32)
    verts, faces, _, _ = marching_cubes(
        volume, level=0.0, spacing=(cell, cell, cell), allow_degenerate=False
    )
    # Index space (row, col, z) -> image units: x = col, y = up from the bottom edge.
    rows_px = verts[:, 0] + (0.5 - _PAD) * cell
    cols_px = verts[:, 1] + (0.5 - _PAD) * cell
    vertices = np.column_stack([cols_px, image_height - rows_px, verts[:, 2] + z[0]])
    # (row, col, z) -> (col, -row, z) is a reflection: flip the winding to keep it outward.
    faces = faces[:, ::-1].astype(np.int64)
    return vertices.astype(np.float64), faces


def _largest_shell(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the biggest connected shell (a sub-voxel neck can leave crumbs)."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, len(faces))
    if labels.max() == 0:
        return vertices, faces
    counts = np.bincount(labels)
    keep = labels == int(np.argmax(counts))
    used = np.unique(faces[keep])
    remap = -np.ones(len(vertices), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces[keep]]


def _check_solid(vertices: np.ndarray, faces: np.ndarray) -> None:
    """Marching cubes on a closed field gives a manifold; prove it before handing it on."""
    solid = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=vertices.astype(np.float32), tri_verts=faces.astype(np.uint32)
        )
    )
    status = solid.status()
    if status != manifold3d.Error.NoError or solid.volume() <= 0:
        raise ModelOutputInvalid(
            "the inflated surface is not a closed solid",
            status=str(status),
            volume=float(solid.volume()),
        )


def _albedo(image: StylizedImage) -> np.ndarray:
    """The texture to project: ``albedo`` when the stylizer gave one, else bled ``rgba``."""
    if image.albedo is not None:
        return np.asarray(image.albedo[..., :3], dtype=np.uint8)
    rgb = np.asarray(image.rgba[..., :3], dtype=np.uint8)
    mask = np.asarray(image.mask, dtype=bool)
    if mask.all():
        return rgb.copy()
    iy, ix = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return rgb[iy, ix]


def _blur_rgb(rgb: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return rgb.copy()
    blurred = ndimage.gaussian_filter(rgb.astype(np.float64), (sigma, sigma, 0), mode="nearest")
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _BilinearTaps:
    """The four texels and weights of bilinear samples at (rows, cols), found once for
    every image of the same (h, w); coordinates clamp to the edge. Flat texel indices:
    one gather per corner instead of a 2-D fancy index."""

    i00: np.ndarray
    i01: np.ndarray
    i10: np.ndarray
    i11: np.ndarray
    fr: np.ndarray
    fc: np.ndarray

    @classmethod
    def at(cls, shape: tuple[int, ...], rows: np.ndarray, cols: np.ndarray) -> _BilinearTaps:
        h, w = shape
        rows = np.clip(rows, 0.0, h - 1.0)
        cols = np.clip(cols, 0.0, w - 1.0)
        r0 = np.floor(rows).astype(np.int64)
        c0 = np.floor(cols).astype(np.int64)
        r1 = np.minimum(r0 + 1, h - 1)
        c1 = np.minimum(c0 + 1, w - 1)
        return cls(
            i00=r0 * w + c0,
            i01=r0 * w + c1,
            i10=r1 * w + c0,
            i11=r1 * w + c1,
            fr=(rows - r0)[:, None],
            fc=(cols - c0)[:, None],
        )

    def sample(self, image: np.ndarray) -> np.ndarray:
        """(n, c) float64 samples of an (h, w, c) image.

        Texels are gathered in the image's own dtype and widened by the products (exact:
        the same float64 values as widening the image first, at a fraction of the memory
        traffic); sums are formed in place, in the order of ``(a*(1-t) + b*t)``."""
        gather = _texel_gather(image)
        fr, fc = self.fr, self.fc
        top = gather(self.i00) * (1 - fc)
        top += gather(self.i01) * fc
        bottom = gather(self.i10) * (1 - fc)
        bottom += gather(self.i11) * fc
        top *= 1 - fr
        bottom *= fr
        top += bottom
        return top


def _texel_gather(image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``gather(flat_indices)`` -> (n, c) texels of an (h, w, c) image.

    Up to 8 uint8 channels travel as one 64-bit word per texel: a 1-D gather of words is
    several times faster than gathering rows of a few bytes, and gives the same bytes."""
    channels = image.shape[2]
    if image.dtype != np.uint8 or channels > 8:
        rows = image.reshape(-1, channels)
        return lambda index: rows[index]
    padded = np.zeros((*image.shape[:2], 8), dtype=np.uint8)
    padded[..., :channels] = image
    words = padded.reshape(-1).view(np.uint64)
    return lambda index: words[index].view(np.uint8).reshape(-1, 8)[:, :channels]


def front_silhouette(vertices: np.ndarray, faces: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The mesh's orthographic projection along z, rasterised on an image grid.

    vertices (n, 3) in this module's units (image pixels, y up); returns (h, w) bool.
    Used to score how faithfully a sculpture keeps its picture's outline (IoU vs the mask).
    """
    h, w = shape
    shift = 4  # sub-pixel bits of cv2.fillPoly
    cols = vertices[:, 0] - 0.5
    rows = (h - vertices[:, 1]) - 0.5
    points = np.rint(np.column_stack([cols, rows]) * (1 << shift)).astype(np.int32)
    # A closed surface's projection is covered by its front-facing triangles; drawing
    # each one alone avoids fillPoly's even-odd rule cancelling overlaps.
    tris = vertices[faces]
    normal_z = (tris[:, 1, 0] - tris[:, 0, 0]) * (tris[:, 2, 1] - tris[:, 0, 1]) - (
        tris[:, 1, 1] - tris[:, 0, 1]
    ) * (tris[:, 2, 0] - tris[:, 0, 0])
    canvas = np.zeros((h, w), dtype=np.uint8)
    for triangle in points[faces[normal_z > 0]]:
        cv2.fillConvexPoly(canvas, triangle, 1, lineType=cv2.LINE_8, shift=shift)
    return canvas.astype(bool)


def silhouette_iou(vertices: np.ndarray, faces: np.ndarray, mask: np.ndarray) -> float:
    """Intersection over union of the mesh's front projection and the subject mask."""
    projected = front_silhouette(vertices, faces, mask.shape)
    union = np.logical_or(projected, mask).sum()
    return float(np.logical_and(projected, mask).sum() / union) if union else 0.0
