"""CPU preview: a PNG thumbnail of the sculpture, rendered without a display.

pyrender renders through OSMesa (Mesa's software rasteriser), so it runs on any worker;
``PYOPENGL_PLATFORM`` must be set before PyOpenGL is first imported, hence the lazy import.
Hosts with EGL may set ``PYOPENGL_PLATFORM=egl`` themselves; we only set a default.
One offscreen renderer (GL context, compiled shaders) per frame size and thread lives as
long as its thread: a worker pays the context and shader set-up once, not per order, and
no frame pays pyrender's ``gc.collect()`` on delete. pyrender's interactive viewer (pyglet,
a window system) is never imported.
The view is a 3/4 front view (glTF convention: +Y up, the subject looks along +Z) with a
key, a fill and a rim light; the background is transparent.

The PNG is a pure function of the mesh. Left to itself, pyrender keeps lights in sets of
nodes hashed by ``id()``, so the order in which it binds them (and the shader adds their
light up) changes from frame to frame; float addition is not associative, and about one
pixel in 250,000 came out one level apart. ``_Scene`` yields them in ``_LIGHTS`` order.
llvmpipe's output does not depend on its thread count (``LP_NUM_THREADS``) or on load.

llvmpipe and triton (which torch._dynamo imports) each bring an LLVM: a process that
imports triton after its first render crashes. Workers load their models (and so triton)
before they render (``sculptsvc.jobs.init_worker``).

Off the critical path: :func:`render_preview_async` renders on the renderer thread (one per
process, so its renderers live as long as the process) while the pipeline cuts the mold;
llvmpipe's draw calls run in C with the GIL released. ``sculpt make`` instead sends a
:class:`PreviewScene` to its helper process (``sculptsvc.workers.helper``), which imported
pyrender and drew a first frame (:func:`warm_up_renderer`) while the early stages ran.
(Rendering a throw-away first frame on the renderer thread while the earlier stages
computed was tried: on two cores it cost more CPU than it hid, 7 % more wall time for
`sculpt mesh`, so in-process there is none.)
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import logging
import os
import sys
import threading
import time
import types
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sculptsvc.imaging import encode_png
from sculptsvc.mesh.colors import hex_to_linear_rgb
from sculptsvc.options import Mode

if TYPE_CHECKING:
    from sculptsvc.mesh.pipeline import ProcessedMesh

_AZIMUTH_DEG = 35.0  # camera turned from the front towards the subject's left
_ELEVATION_DEG = 20.0  # camera above the subject, looking slightly down
_FOV_DEG = 30.0
_MARGIN = 1.12  # bounding sphere to frame, so the silhouette never touches the edge
_KEY_INTENSITY = 3.0
_FILL_INTENSITY = 1.2
_RIM_INTENSITY = 1.5
_AMBIENT = 0.25
# (name, azimuth from the camera's, elevation, intensity), in the order the shader sums them
_LIGHTS = (
    ("key", -30.0, 45.0, _KEY_INTENSITY),
    ("fill", 70.0, 10.0, _FILL_INTENSITY),
    ("rim", 180.0, 30.0, _RIM_INTENSITY),
)
_LIGHT_NAMES = tuple(f"light:{name}" for name, *_ in _LIGHTS)
PREVIEW_SIZE_DEFAULT = 512
_SUPERSAMPLE = 2  # render at 2x and box-filter: smooth silhouettes without MSAA
_LOCK = threading.Lock()  # OSMesa contexts are not thread-safe
# Per thread (an OSMesa context is current in one thread only): (width, height) -> renderer.
# A thread's renderers are freed when the thread ends, in that thread; the main thread's at
# exit, before interpreter teardown (pyrender's __del__ would then fail and log).
_LOCAL = threading.local()
_THREAD_LOCK = threading.Lock()
_render_thread: ThreadPoolExecutor | None = None


def _pyrender() -> Any:
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    # PyOpenGL announces its missing optional C accelerator on every start; it is optional.
    logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.ERROR)
    if "pyrender" not in sys.modules and "pyrender.viewer" not in sys.modules:
        # pyrender's __init__ imports its on-screen Viewer, which loads pyglet and probes
        # for X11 (~0.1 s per process). Offscreen rendering never uses it.
        viewer = types.ModuleType("pyrender.viewer")
        viewer.Viewer = None  # type: ignore[attr-defined]
        sys.modules["pyrender.viewer"] = viewer
    import pyrender

    return pyrender


@functools.cache
def _scene_type(pyrender: Any) -> Any:
    """A pyrender ``Scene`` whose lights come out in ``_LIGHTS`` order, not set order."""

    class _Scene(pyrender.Scene):
        @property
        def light_nodes(self) -> list[Any]:
            return sorted(super().light_nodes, key=lambda node: _LIGHT_NAMES.index(node.name))

    return _Scene


def _renderer(pyrender: Any, width: int, height: int) -> Any:
    """This thread's offscreen renderer of this size (call with ``_LOCK`` held)."""
    renderers: dict[tuple[int, int], Any] | None = getattr(_LOCAL, "renderers", None)
    if renderers is None:
        renderers = _LOCAL.renderers = {}
        if threading.current_thread() is threading.main_thread():
            atexit.register(_release_renderers)
    renderer = renderers.get((width, height))
    if renderer is None:
        renderer = renderers[(width, height)] = pyrender.OffscreenRenderer(width, height)
    return renderer


def _release_renderers() -> None:
    """Free the calling thread's GL contexts."""
    with _LOCK:
        renderers = getattr(_LOCAL, "renderers", {})
        for renderer in renderers.values():
            renderer.delete()
        renderers.clear()


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (OpenGL: camera looks along its -Z)."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])


def _frame(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Look-at point and camera distance that fit every vertex with ``_MARGIN`` to spare."""
    toward_camera = _direction(_AZIMUTH_DEG, _ELEVATION_DEG)
    right = np.cross(np.array([0.0, 1.0, 0.0]), toward_camera)
    right /= np.linalg.norm(right)
    up = np.cross(toward_camera, right)
    mid = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    local = vertices - mid
    x, y, depth = local @ right, local @ up, local @ toward_camera
    # Centre the silhouette: shift the look-at point to the middle of the projected extents.
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    center = mid + cx * right + cy * up
    half = np.tan(np.radians(_FOV_DEG) / 2)
    spread = np.maximum(np.abs(x - cx), np.abs(y - cy))
    distance = float(np.max(depth + spread * _MARGIN / half))
    return center, max(distance, float(np.ptp(vertices, axis=0).max()) or 1.0)


@dataclass(frozen=True)
class PreviewScene:
    """Everything the preview is drawn from, as plain arrays: picklable, so the preview can
    be rendered in another process (``sculpt make``'s helper) as well as on this one's
    renderer thread. Built by :func:`preview_scene`."""

    positions: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    texcoords: np.ndarray | None
    """OpenGL convention (v = 0 at the image's bottom row); None: untextured."""
    texture: np.ndarray | None
    base_color: tuple[float, float, float, float]
    roughness: float
    frame_vertices: np.ndarray
    """The sculpture's vertices, which the camera frames."""
    size: int


def preview_scene(
    result: ProcessedMesh, mode: Mode = "multicolor", color_hex: str | None = None, size: int = 512
) -> PreviewScene:
    """The preview's scene for ``result`` (computes the atlas and texture if not yet done)."""
    params = result.params
    if mode == "multicolor":
        atlas = result.atlas()
        return PreviewScene(
            positions=atlas.vertices,
            normals=atlas.normals,
            faces=atlas.faces,
            # glTF puts v = 0 at the image's top row, OpenGL at its bottom row.
            texcoords=np.column_stack([atlas.uv[:, 0], 1.0 - atlas.uv[:, 1]]),
            texture=result.texture(color_hex),
            base_color=(1.0, 1.0, 1.0, 1.0),
            roughness=params.roughness,
            frame_vertices=np.asarray(result.mesh.vertices),
            size=size,
        )
    rgb = hex_to_linear_rgb(color_hex or params.default_color_hex)
    mesh = result.mesh
    return PreviewScene(
        positions=np.asarray(mesh.vertices),
        normals=np.asarray(mesh.vertex_normals),
        faces=np.asarray(mesh.faces),
        texcoords=None,
        texture=None,
        base_color=(*rgb, 1.0),
        roughness=params.roughness,
        frame_vertices=np.asarray(mesh.vertices),
        size=size,
    )


def render_preview(
    result: ProcessedMesh,
    mode: Mode = "multicolor",
    color_hex: str | None = None,
    size: int = 512,
) -> bytes:
    """PNG bytes (RGBA, transparent background) of a 3/4 front view of the sculpture."""
    return render_scene(preview_scene(result, mode, color_hex, size))


def render_scene(preview: PreviewScene) -> bytes:
    """PNG bytes (RGBA, transparent background) of a 3/4 front view of ``preview``."""
    pyrender = _pyrender()
    texture = (
        pyrender.Texture(source=preview.texture, source_channels="RGB")
        if preview.texture is not None
        else None
    )
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=list(preview.base_color),
        baseColorTexture=texture,
        metallicFactor=0.0,
        roughnessFactor=preview.roughness,
    )
    primitive = pyrender.Primitive(
        positions=preview.positions,
        normals=preview.normals,
        texcoord_0=preview.texcoords,
        indices=preview.faces,
        material=material,
    )
    center, distance = _frame(np.asarray(preview.frame_vertices))
    up = np.array([0.0, 1.0, 0.0])

    scene = _scene_type(pyrender)(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[_AMBIENT] * 3)
    scene.add(pyrender.Mesh([primitive]))
    eye = center + _direction(_AZIMUTH_DEG, _ELEVATION_DEG) * distance
    camera = pyrender.PerspectiveCamera(
        yfov=np.radians(_FOV_DEG), znear=distance * 0.05, zfar=distance * 4
    )
    scene.add(camera, pose=_look_at(eye, center, up))
    for name, (_, azimuth, elevation, intensity) in zip(_LIGHT_NAMES, _LIGHTS, strict=True):
        light_eye = center + _direction(_AZIMUTH_DEG + azimuth, elevation) * distance
        scene.add(
            pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=intensity),
            name=name,
            pose=_look_at(light_eye, center, up),
        )
    size = preview.size
    with _LOCK:
        renderer = _renderer(pyrender, size * _SUPERSAMPLE, size * _SUPERSAMPLE)
        color, depth = renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
    return encode_png(_downsample(color, depth, _SUPERSAMPLE))


def warm_up_renderer(size: int = PREVIEW_SIZE_DEFAULT) -> None:
    """A helper's start (``workers/helper``): the GL context and both shader programs (with
    and without a texture) made now, on a tiny scene, not in the order's frame. The order's
    PNG comes out the same bytes after it."""
    corners = np.array(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64
    )
    faces = np.array(
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    )
    for textured in (True, False):
        render_scene(
            PreviewScene(
                positions=corners,
                normals=corners,
                faces=faces,
                texcoords=0.5 + 0.5 * corners[:, :2] if textured else None,
                texture=np.full((4, 4, 3), 200, dtype=np.uint8) if textured else None,
                base_color=(0.8, 0.8, 0.8, 1.0),
                roughness=0.5,
                frame_vertices=corners,
                size=size,
            )
        )


# --- the renderer thread ----------------------------------------------------------------------


def _thread() -> ThreadPoolExecutor:
    global _render_thread
    with _THREAD_LOCK:
        if _render_thread is None:
            _render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")
        return _render_thread


def _forget_thread() -> None:
    """A forked child has no renderer thread (nor its GL contexts): start afresh."""
    global _render_thread, _THREAD_LOCK
    _render_thread, _THREAD_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_thread)


def render_preview_async(
    result: ProcessedMesh,
    mode: Mode = "multicolor",
    color_hex: str | None = None,
    size: int = 512,
) -> Future[tuple[bytes, float]]:
    """:func:`render_preview` on the renderer thread: (PNG bytes, seconds it rendered).

    The caller must not touch ``result`` until the future is done (trimesh's caches are
    not thread-safe); structlog's bound context (the order id) goes along."""

    def render() -> tuple[bytes, float]:
        start = time.perf_counter()
        png = render_preview(result, mode=mode, color_hex=color_hex, size=size)
        return png, time.perf_counter() - start

    return _thread().submit(contextvars.copy_context().run, render)


def _downsample(color: np.ndarray, depth: np.ndarray, factor: int) -> np.ndarray:
    """RGBA at 1/factor size with anti-aliased edges.

    OSMesa has no framebuffer objects, so pyrender reads back RGB only: coverage comes from
    the depth buffer (geometry where depth > 0) and edges are box-filtered (premultiplied):
    per output pixel, the mean colour of its covered samples and alpha = covered share.
    Sums and counts are exact integers and factor is a power of two, so this equals the
    float64 box filter bit for bit.
    """
    covered = depth > 0
    h, w = covered.shape[0] // factor, covered.shape[1] // factor
    rgb = np.where(covered[..., None], np.asarray(color)[..., :3], 0).astype(np.uint16)
    total = np.zeros((h, w, 3), dtype=np.int32)
    count = np.zeros((h, w), dtype=np.int32)
    # strided adds of the factor**2 sample grids: the same integer sums as a reshape-sum
    # over axes (1, 3), at half its cost
    for dy in range(factor):
        for dx in range(factor):
            total += rgb[dy : h * factor : factor, dx : w * factor : factor]
            count += covered[dy : h * factor : factor, dx : w * factor : factor]
    straight = total / np.maximum(count, 1)[..., None]
    alpha = count / (factor * factor) * 255.0
    out = np.dstack([straight, alpha])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
