"""Safe image decoding: customer bytes in, a plain ``(h, w, 3|4) uint8`` sRGB array out.

Pictures come from strangers, so every limit is enforced *before* pixels are decoded:
the byte count first, then the width and height read from the header (Pillow's
``Image.open`` is lazy), with Pillow's own decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``, its warning promoted to an error) as a second line. Only the
formats below are parsed at all, which keeps rarely-fuzzed decoders out of reach.

Errors: ``InvalidImage`` (empty, truncated, not an image, too small) and ``ImageTooLarge``
(bytes or pixels over the limits); both are ``RejectedInput`` (never retried).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from sculptsvc.errors import ImageTooLarge, InvalidImage
from sculptsvc.logging import get_logger
from sculptsvc.settings import Settings

log = get_logger(__name__)

ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "AVIF", "HEIF", "GIF", "BMP", "TIFF")
"""Decoders we let untrusted bytes reach; everything else is ``InvalidImage``. HEIF (the
HEIC photos phones take by default) is read by pillow-heif's libheif plugin, AVIF by
Pillow's own."""

_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
"""ISO-BMFF major brands of HEIF stills and sequences (ISO/IEC 23008-12)."""


def _register_heif_if_needed(data: bytes) -> None:
    """Load pillow-heif's opener only for HEIF bytes (its import costs ~75 ms a process)."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        from pillow_heif import register_heif_opener

        register_heif_opener()


MIN_SIDE_PX = 32
"""Below this a picture holds too little to sculpt from (and 1x1 probes are rejected)."""

_SRGB_PROFILE = ImageCms.createProfile("sRGB")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


@dataclass(frozen=True)
class ImageLimits:
    """Input limits; ``from_settings`` reads them from ``Settings``."""

    max_bytes: int
    max_pixels: int
    min_side: int = MIN_SIDE_PX

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = MIN_SIDE_PX
) -> np.ndarray:
    """Decode untrusted image bytes to ``(h, w, 3)`` RGB or ``(h, w, 4)`` RGBA uint8.

    EXIF orientation is applied, embedded ICC profiles are converted to sRGB, palette,
    grey, 16-bit and CMYK pictures become RGB(A). An alpha channel is kept only when it
    holds information (some pixel below 255). Animated images yield their first frame.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"the image has {len(data)} bytes, more than the limit of {max_bytes}",
            size_bytes=len(data),
            max_bytes=max_bytes,
        )
    with warnings.catch_warnings():
        # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above: make
        # both an error so its guard backs up ours even if a caller raises our limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open_checked(data, max_pixels=max_pixels, min_side=min_side)
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"the image is a decompression bomb: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise InvalidImage(f"the image data is corrupt or truncated: {exc}") from exc
    array = to_rgb_array(image)
    log.debug("image_decoded", width=array.shape[1], height=array.shape[0], mode=image.mode)
    return array


def decode_image_with_settings(data: bytes, settings: Settings) -> np.ndarray:
    """``decode_image`` with the limits of ``settings``."""
    limits = ImageLimits.from_settings(settings)
    return decode_image(
        data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, min_side=limits.min_side
    )


def _unidentified(data: bytes, formats: list[str]) -> str:
    """Why Pillow identified nothing, in words a shop can act on: the accepted format the
    bytes claim to be (by Pillow's own signature test) and its reader's complaint (a TIFF
    in a pixel layout Pillow lacks), or that they are none of the accepted formats."""
    prefix = data[:16]  # what Image.open shows each format's signature test
    for name in formats:
        reader, claims = Image.OPEN[name]
        if claims is None or claims(prefix) is not True:
            continue
        try:
            reader(io.BytesIO(data), "")
        except Exception as err:  # any reader failure is the reason to report
            return f"a {name} file this service cannot decode: {err or type(err).__name__}"
    return f"not a supported image (accepted: {', '.join(ALLOWED_FORMATS)})"


def _open_checked(data: bytes, *, max_pixels: int, min_side: int) -> Image.Image:
    """Open lazily (header only) and check the dimensions before any pixel is decoded."""
    _register_heif_if_needed(data)
    # Pillow fails on a format it has no plugin for: HEIF only once pillow-heif registered it
    formats = [f for f in ALLOWED_FORMATS if f != "HEIF" or f in Image.OPEN]
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the image is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(_unidentified(data, formats)) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"unreadable image header: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels, "
            f"more than the limit of {max_pixels}",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )
    if min(width, height) < min_side:
        raise InvalidImage(
            f"the image is {width}x{height}; each side must be at least {min_side} px",
            width=width,
            height=height,
        )
    return image


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to ``(h, w, 3|4) uint8`` sRGB; alpha only when it is informative."""
    image = _to_srgb(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        rgb = _wide_grey_to_uint8(np.asarray(image))
        return np.ascontiguousarray(np.repeat(rgb[..., None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    if has_alpha and bool(array[..., 3].min() == 255):
        array = array[..., :3]
    return np.ascontiguousarray(array)


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert through the embedded ICC profile (phones write Display P3, print CMYK)."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            image, source, _SRGB_PROFILE, outputMode=out_mode, renderingIntent=0
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        # A broken profile is not a broken picture: fall back to the plain pixel values.
        log.info("icc_profile_ignored", reason=str(exc))
        return image
    assert converted is not None
    return converted


def _wide_grey_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit / 32-bit / float grey to 8 bits (16-bit PNGs decode to mode I or I;16)."""
    if values.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(values)) <= 1.0 else 255.0
        scaled = np.nan_to_num(values, nan=0.0) / top * 255.0
    else:
        scaled = values.astype(np.float64) / 257.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


PNG_COMPRESS_LEVEL = 4
"""Fixed: zlib output is a pure function of input and level, so PNGs are reproducible. Level
4, not zlib's default 6: a baked 1024 px texture encodes in 53 ms instead of 117 ms and
comes out 7 % larger (420 KB vs 394 KB); level 1 is 38 ms but 29 % larger."""


def encode_png(image: np.ndarray) -> bytes:
    """Deterministic PNG of an (h, w, 3|4) uint8 array: no metadata chunks, fixed level."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


@contextmanager
def single_threaded_cv2() -> Iterator[None]:
    """Same input, same output: OpenCV's thread pool may split work (GrabCut, filters)
    differently run to run, so seeded stages pin it to one thread while they run."""
    import cv2  # only the stages that use OpenCV pay for importing it

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)
