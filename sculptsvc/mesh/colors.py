"""Colour sources for texture baking and colour-space helpers.

A colour source answers "what colour is the surface here?" for 3D points (see
``sculptsvc.reconstruct.base.ColorSource``). Reconstructors may hand one over; otherwise we
build one from what the input mesh carries: vertex colours, face (or face-corner) colours,
or an input texture read at points sampled on its surface. All become a coloured point
cloud queried by the nearest ``k`` points with inverse-distance weights, which is fast for
a million texels and follows the source surface closely because the points lie on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from sculptsvc.errors import InvalidEvent
from sculptsvc.reconstruct.base import ColorSource


def parse_hex(color_hex: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> (r, g, b) 0..255; raises ``InvalidEvent`` naming the bad value."""
    text = color_hex.strip()
    if len(text) != 7 or text[0] != "#":
        raise InvalidEvent(f"colour {color_hex!r} is not '#RRGGBB'", color=color_hex)
    try:
        value = int(text[1:], 16)
    except ValueError:
        raise InvalidEvent(f"colour {color_hex!r} is not '#RRGGBB'", color=color_hex) from None
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def srgb_to_linear(channel: np.ndarray | float) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer function inverted; input and output in 0..1."""
    c = np.asarray(channel, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(channel: np.ndarray | float) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer function; input and output in 0..1."""
    c = np.clip(np.asarray(channel, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def hex_to_linear_rgb(color_hex: str) -> tuple[float, float, float]:
    """'#RRGGBB' (sRGB, as customers pick colours) -> linear RGB for glTF colour factors."""
    rgb = np.array(parse_hex(color_hex), dtype=np.float64) / 255.0
    lin = srgb_to_linear(rgb)
    return float(lin[0]), float(lin[1]), float(lin[2])


@dataclass(frozen=True)
class PointCloudColorSource:
    """Colours known at points on a surface, blended from the ``k`` nearest by 1/distance.

    points: (n, 3) float; colors: (n, 4) uint8.
    """

    points: np.ndarray
    colors: np.ndarray
    k: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", cKDTree(np.asarray(self.points, dtype=np.float64)))

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self.points))
        dist, idx = self._tree.query(np.asarray(points, dtype=np.float64), k=k)  # type: ignore[attr-defined]
        if k == 1:
            return self.colors[idx].astype(np.uint8)
        weights = 1.0 / np.maximum(dist, 1e-12)
        weights /= weights.sum(axis=1, keepdims=True)
        blended = np.einsum("nk,nkc->nc", weights, self.colors[idx].astype(np.float64))
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ConstantColorSource:
    """Every point has the same sRGB colour; a class (not a closure) so the bake can see
    that no texel needs a query and fill the texture in one step."""

    rgba: tuple[int, int, int, int]

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.array(self.rgba, dtype=np.uint8), (len(points), 4)).copy()


def constant_color_source(color_hex: str) -> ConstantColorSource:
    """Every point has the same sRGB colour (for meshes that carry none)."""
    return ConstantColorSource((*parse_hex(color_hex), 255))


def _rgba(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors)
    if colors.dtype != np.uint8:
        scale = 255.0 if colors.size and float(np.nanmax(colors)) <= 1.0 else 1.0
        colors = np.clip(np.rint(colors * scale), 0, 255).astype(np.uint8)
    if colors.shape[1] == 3:
        colors = np.hstack([colors, np.full((len(colors), 1), 255, np.uint8)])
    return colors


def vertex_color_source(vertices: np.ndarray, colors: np.ndarray, k: int = 4) -> ColorSource:
    """Colour source from per-vertex colours: (n, 3) float vertices, (n, 3|4) colours."""
    return PointCloudColorSource(np.asarray(vertices, np.float64), _rgba(colors), k=k)


def texture_color_source(
    mesh: trimesh.Trimesh, samples_per_face: int = 4, k: int = 4, seed: int = 0
) -> ColorSource | None:
    """Colour source from a textured mesh: the texture read at seeded surface samples."""
    visual = mesh.visual
    uv = getattr(visual, "uv", None)
    material = getattr(visual, "material", None)
    image = getattr(material, "image", None) if material is not None else None
    if image is None:
        image = getattr(material, "baseColorTexture", None) if material is not None else None
    if uv is None or image is None or len(uv) != len(mesh.vertices):
        return None
    count = max(len(mesh.faces) * samples_per_face, 1)
    points, face_idx = trimesh.sample.sample_surface(mesh, count, seed=seed)
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[face_idx], points)
    sample_uv = np.einsum("ni,nij->nj", bary, np.asarray(uv, np.float64)[mesh.faces[face_idx]])
    rgba = _rgba(trimesh.visual.color.uv_to_color(sample_uv, image))
    points = np.vstack([mesh.vertices, points])
    vertex_rgba = _rgba(trimesh.visual.color.uv_to_color(np.asarray(uv, np.float64), image))
    colors = np.vstack([vertex_rgba, rgba])
    factor = _base_color_factor(material)
    if factor is not None:  # glTF: base colour = factor x texture, in linear light
        linear = srgb_to_linear(colors[:, :3] / 255.0) * factor[:3]
        colors = colors.copy()
        colors[:, :3] = np.clip(np.rint(linear_to_srgb(linear) * 255.0), 0, 255)
    return PointCloudColorSource(points, colors, k=k)


_TRIMESH_DEFAULT_DIFFUSE = (102, 102, 102, 255)  # what trimesh fills in for a material without Kd


def _factor(material: object) -> np.ndarray | None:
    """A glTF material's linear RGBA base colour factor in 0..1 (trimesh keeps it as uint8
    0..255), None when the material has none."""
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        return None
    factor = np.asarray(factor)
    return factor / 255.0 if factor.dtype.kind in "ui" else factor.astype(np.float64)


def _base_color_factor(material: object) -> np.ndarray | None:
    """The factor that tints a texture; None when absent or white (no effect)."""
    factor = _factor(material)
    return None if factor is None or np.all(factor[:3] >= 1.0) else factor


def material_color(material: object) -> tuple[int, int, int, int] | None:
    """The sRGB colour of an untextured material: glTF's base colour factor (linear, so
    converted), or an OBJ material's diffuse ``Kd``; None when the file gave none."""
    factor = _factor(material)
    if factor is not None:
        rgb = np.clip(np.rint(linear_to_srgb(factor[:3]) * 255.0), 0, 255).astype(int)
        alpha = round(float(factor[3]) * 255.0) if len(factor) > 3 else 255
        return int(rgb[0]), int(rgb[1]), int(rgb[2]), alpha
    diffuse = getattr(material, "diffuse", None)
    if diffuse is None or tuple(int(c) for c in diffuse) == _TRIMESH_DEFAULT_DIFFUSE:
        return None
    r, g, b, a = (int(c) for c in _rgba(np.asarray(diffuse).reshape(1, -1))[0])
    return r, g, b, a


CORNER_COLORS = "sculpt_corner_colors"
"""``Trimesh.metadata`` key of (m, 3, 4) uint8 sRGBA colours per face corner, for formats
whose colours trimesh's visuals cannot hold (3MF property groups)."""

_CORNER_INSET = 0.8  # barycentric weight of its own corner at a corner's sample point

CORNER_TEXTURES = "sculpt_corner_textures"
"""``Trimesh.metadata`` key of :class:`CornerTextures`: textured faces of a format whose
UVs live per face corner (3MF texture groups); the other faces keep ``CORNER_COLORS``."""


@dataclass(frozen=True)
class CornerTextures:
    """corner_uv: (m, 3, 2) float (NaN on untextured faces); texture: (m,) int index into
    ``images`` (-1: untextured); images: PIL images, v = 0 at their bottom row."""

    corner_uv: np.ndarray
    texture: np.ndarray
    images: list[Any]


def face_samples(
    mesh: trimesh.Trimesh, samples_per_face: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (n, 3), face (n,), barycentric (n, 3)): on every face a point just inside
    each corner and its centroid, then seeded area-weighted surface samples. The corner
    points sit inside their face, so a vertex shared by faces of different colours (or a
    UV seam) does not blend them."""
    tris = np.asarray(mesh.triangles, dtype=np.float64)
    side = (1.0 - _CORNER_INSET) / 2.0
    fixed = np.vstack([np.roll([_CORNER_INSET, side, side], i) for i in range(3)] + [[1 / 3] * 3])
    count = max(len(mesh.faces) * samples_per_face, 1)
    points, face_idx = trimesh.sample.sample_surface(mesh, count, seed=seed)
    bary = trimesh.triangles.points_to_barycentric(tris[face_idx], points)
    m = len(tris)
    return (
        np.vstack([np.einsum("bi,mij->mbj", fixed, tris).reshape(-1, 3), points]),
        np.concatenate([np.repeat(np.arange(m), len(fixed)), face_idx]),
        np.vstack([np.tile(fixed, (m, 1)), bary]),
    )


def corner_color_source(
    mesh: trimesh.Trimesh,
    corner_colors: np.ndarray,
    samples_per_face: int = 4,
    k: int = 4,
    seed: int = 0,
) -> PointCloudColorSource:
    """Colour source from colours per face corner, (m, 3, 3|4) (a face colour is three equal
    corners), interpolated barycentrically at :func:`face_samples`."""
    corners = _rgba(np.asarray(corner_colors).reshape(-1, np.shape(corner_colors)[-1]))
    corners = corners.reshape(len(mesh.faces), 3, 4).astype(np.float64)
    points, face, bary = face_samples(mesh, samples_per_face, seed)
    blended = np.einsum("ni,nic->nc", bary, corners[face])
    return PointCloudColorSource(points, np.clip(np.rint(blended), 0, 255).astype(np.uint8), k=k)


COLOR_PARTS = "sculpt_color_parts"
"""``Trimesh.metadata`` key of the parts (``Trimesh``, in the mesh's frame) of a mesh read
from a scene whose parts carry colours differently: each part keeps its own visual."""


def color_source_from_visual(
    mesh: trimesh.Trimesh,
    k: int = 4,
    samples_per_face: int = 4,
    uncoloured_hex: str | None = None,
) -> tuple[ColorSource | None, str]:
    """The colour carrier of a loaded mesh, and its kind: 'vertex', 'face' (colours per
    face or per face corner), 'texture', 'material' (an untextured material's colour) or
    'none'. A mesh of parts (``COLOR_PARTS``) joins its parts' colour clouds, parts without
    colour in ``uncoloured_hex`` (default ``MeshParams.default_color_hex``); its kind names
    the parts' kinds joined by '+'."""
    parts = mesh.metadata.get(COLOR_PARTS)
    if parts:
        if uncoloured_hex is None:
            from sculptsvc.mesh.params import MeshParams

            uncoloured_hex = MeshParams().default_color_hex
        return _parts_color_source(parts, k, samples_per_face, uncoloured_hex)
    corners = mesh.metadata.get(CORNER_COLORS)
    textures = mesh.metadata.get(CORNER_TEXTURES)
    if textures is not None and len(textures.texture) == len(mesh.faces):
        return _corner_texture_source(mesh, corners, textures, samples_per_face, k)
    if corners is not None and len(corners) == len(mesh.faces):
        return corner_color_source(mesh, corners, samples_per_face, k), "face"
    kind = getattr(mesh.visual, "kind", None)
    if kind == "texture":
        source = texture_color_source(mesh, samples_per_face=samples_per_face, k=k)
        if source is not None:
            return source, "texture"
        rgba = material_color(getattr(mesh.visual, "material", None))
        if rgba is not None:  # a plain coloured material, no texture image
            return ConstantColorSource(rgba), "material"
    if kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)
        if len(colors) == len(mesh.vertices) and colors.size:
            return vertex_color_source(mesh.vertices, colors, k=k), "vertex"
    if kind == "face":
        colors = np.asarray(mesh.visual.face_colors)
        if len(colors) == len(mesh.faces) and colors.size:
            corners = np.repeat(colors[:, None, :], 3, axis=1)
            return corner_color_source(mesh, corners, samples_per_face, k), "face"
    return None, "none"


def _parts_color_source(
    parts: list[trimesh.Trimesh], k: int, samples_per_face: int, uncoloured_hex: str
) -> tuple[ColorSource | None, str]:
    """One colour cloud of every part's own (a part without colour: its vertices and face
    centres in ``uncoloured_hex``)."""
    points, colors, kinds = [], [], set()
    plain = np.array([*parse_hex(uncoloured_hex), 255], dtype=np.uint8)
    for part in parts:
        source, kind = color_source_from_visual(part, k, samples_per_face, uncoloured_hex)
        if isinstance(source, PointCloudColorSource):
            points.append(source.points)
            colors.append(source.colors)
        else:
            if isinstance(source, ConstantColorSource):
                rgba = np.array(source.rgba, dtype=np.uint8)
            else:
                kind, rgba = "none", plain
            surface = np.vstack([part.vertices, part.triangles_center])
            points.append(surface)
            colors.append(np.broadcast_to(rgba, (len(surface), 4)))
        kinds.add(kind)
    if kinds == {"none"}:
        return None, "none"
    return PointCloudColorSource(np.vstack(points), np.vstack(colors), k=k), "+".join(sorted(kinds))


def _corner_texture_source(
    mesh: trimesh.Trimesh,
    corners: np.ndarray | None,
    textures: CornerTextures,
    samples_per_face: int,
    k: int,
    seed: int = 0,
) -> tuple[ColorSource, str]:
    """Textured faces read their image at :func:`face_samples` (corner UVs interpolated),
    the others their corner colours; one colour cloud of both."""
    points, colors, kinds = [], [], set()
    for index, image in enumerate(textures.images):
        faces = np.flatnonzero(textures.texture == index)
        if len(faces) == 0:
            continue
        part = trimesh.Trimesh(mesh.vertices, mesh.faces[faces], process=False)
        samples, face, bary = face_samples(part, samples_per_face, seed)
        uv = np.einsum("ni,nij->nj", bary, textures.corner_uv[faces][face])
        points.append(samples)
        colors.append(_rgba(trimesh.visual.color.uv_to_color(uv, image)))
        kinds.add("texture")
    rest = np.flatnonzero(textures.texture < 0)
    if len(rest):
        part = trimesh.Trimesh(mesh.vertices, mesh.faces[rest], process=False)
        plain = np.full((len(rest), 3, 4), 255, np.uint8) if corners is None else corners[rest]
        source = corner_color_source(part, plain, samples_per_face, k, seed)
        points.append(source.points)
        colors.append(source.colors)
        kinds.add("face")
    return PointCloudColorSource(np.vstack(points), np.vstack(colors), k=k), "+".join(sorted(kinds))
