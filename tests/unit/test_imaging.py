"""decode_image: limits checked before decoding, every mode to RGB(A), typed rejections."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sculptsvc.errors import ImageTooLarge, InvalidImage, RejectedInput
from sculptsvc.imaging import decode_image, decode_image_with_settings
from sculptsvc.settings import Settings

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature, IHDR and IEND: claims a size, carries no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def gradient_rgb(w: int = 64, h: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 4 % 256, y * 5 % 256, (x + y) % 256]).astype(np.uint8)


# --- good pictures ---------------------------------------------------------------------


def test_rgb_png_round_trips_exactly() -> None:
    pixels = gradient_rgb()
    out = decode_image(encode(Image.fromarray(pixels)), **LIMITS)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert np.array_equal(out, pixels)
    assert out.flags["C_CONTIGUOUS"]


def test_informative_alpha_is_kept_and_opaque_alpha_dropped() -> None:
    rgba = np.dstack([gradient_rgb(), np.full((48, 64), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    out = decode_image(encode(Image.fromarray(rgba)), **LIMITS)
    assert out.shape == (48, 64, 4) and np.array_equal(out, rgba)

    rgba[..., 3] = 255
    opaque = decode_image(encode(Image.fromarray(rgba)), **LIMITS)
    assert opaque.shape == (48, 64, 3)
    assert np.array_equal(opaque, rgba[..., :3])


def test_palette_with_transparency_becomes_rgba() -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (10, 10, 30, 30))
    out = decode_image(encode(image, transparency=0), **LIMITS)
    assert out.shape == (40, 40, 4)
    assert out[0, 0, 3] == 0 and tuple(out[20, 20]) == (0, 0, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_grey_modes_become_rgb_or_rgba(mode: str) -> None:
    image = Image.new(mode, (40, 36), 200 if mode != "LA" else (200, 128))
    out = decode_image(encode(image), **LIMITS)
    assert out.shape == (36, 40, 4 if mode == "LA" else 3)
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])
    assert out[0, 0, 0] == (255 if mode == "1" else 200)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.uint16).repeat(10, 1)
    values = np.tile(values, (10, 1))
    out = decode_image(encode(Image.fromarray(values)), **LIMITS)
    assert out.shape == (40, 40, 3)
    assert out[0, ::10, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # pure red ink
    out = decode_image(encode(image, "JPEG", quality=95), **LIMITS)
    assert out.shape == (40, 40, 3)
    r, g, b = out[20, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied() -> None:
    pixels = np.zeros((40, 64, 3), np.uint8)
    pixels[:, :32] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data, **LIMITS)
    assert out.shape == (64, 40, 3)
    assert out[5, 20, 0] > 200 and out[-5, 20, 0] < 60  # the red half is now on top


def test_animated_gif_yields_its_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue(), **LIMITS)
    assert out[0, 0, 0] > 200 and out[0, 0, 1] < 60


def test_limits_come_from_settings() -> None:
    data = encode(Image.fromarray(gradient_rgb()))
    with pytest.raises(ImageTooLarge):
        decode_image_with_settings(data, Settings(max_image_bytes=len(data) - 1))
    with pytest.raises(ImageTooLarge):
        decode_image_with_settings(data, Settings(max_image_pixels=64 * 48 - 1))
    assert decode_image_with_settings(data, Settings()).shape == (48, 64, 3)


# --- bad pictures: each gets its typed error -------------------------------------------


def truncated_png() -> bytes:
    data = encode(Image.fromarray(gradient_rgb(128, 128)))
    return data[: len(data) // 2]


def one_by_one() -> bytes:
    return encode(Image.new("RGB", (1, 1)))


BAD = {
    "zero bytes": (b"", InvalidImage),
    "truncated png": (truncated_png(), InvalidImage),
    "1x1": (one_by_one(), InvalidImage),
    "20000x20000 header": (png_header_only(20_000, 20_000), ImageTooLarge),
    "7000x7000 header": (png_header_only(7_000, 7_000), ImageTooLarge),
    "header without pixels": (png_header_only(100, 100), InvalidImage),
    "not an image": (b"%PDF-1.7\n" + b"x" * 200, InvalidImage),
    "format not allowed": (encode(Image.new("RGB", (40, 40)), "PPM"), InvalidImage),
    "31 px side": (encode(Image.new("RGB", (31, 400))), InvalidImage),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_images_get_typed_errors(name: str) -> None:
    data, error = BAD[name]
    with pytest.raises(error) as info:
        decode_image(data, **LIMITS)
    assert isinstance(info.value, RejectedInput) and not info.value.retryable
    assert info.value.code in {"invalid_image", "image_too_large"}


def test_pixel_limit_is_checked_from_the_header_with_details() -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(png_header_only(7_000, 7_000), **LIMITS)
    assert info.value.detail == {"width": 7000, "height": 7000, "max_pixels": 40_000_000}


def test_pillow_bomb_guard_backs_up_a_raised_limit() -> None:
    # Our own limit raised above Pillow's (89 MP): Pillow's warning must still stop it.
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(10_000, 10_000), max_bytes=1 << 30, max_pixels=10**9)


def test_byte_limit_is_checked_first() -> None:
    with pytest.raises(ImageTooLarge) as info:
        decode_image(b"\x00" * 101, max_bytes=100, max_pixels=10**6)
    assert info.value.detail["size_bytes"] == 101


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_heic_and_avif_photos_decode_with_their_orientation(fmt: str) -> None:
    """HEIC is what phones take photos in by default; AVIF is the web's newer format. Both
    decode to the picture (lossy: colours within a few levels), EXIF orientation applied."""
    from pillow_heif import register_heif_opener

    register_heif_opener()  # to write the fixture; the decoder loads it by itself for HEIF
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (220, 30, 30)  # left half red
    pixels[:, 32:] = (30, 30, 220)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(pixels), fmt, quality=95, exif=exif.tobytes())
    assert data[4:8] == b"ftyp"
    out = decode_image(data, **LIMITS)
    assert out.shape == (64, 48, 3)
    assert np.abs(out[5, 24].astype(int) - (220, 30, 30)).max() < 25  # red now on top
    assert np.abs(out[-5, 24].astype(int) - (30, 30, 220)).max() < 25


def test_an_accepted_format_pillow_cannot_decode_is_named_with_the_reason() -> None:
    """A two-channel planar TIFF (scikit-image's multipage_rgb.tif is another such file):
    the message said 'not a supported image (accepted: ... TIFF)', which contradicts
    itself; it now names the format and the reader's complaint. Bytes of no accepted
    format keep the list of formats."""
    tifffile = pytest.importorskip("tifffile")
    buffer = io.BytesIO()
    planes = np.random.default_rng(0).integers(0, 255, (2, 40, 40), dtype=np.uint8)
    tifffile.imwrite(buffer, planes, photometric="minisblack", planarconfig="separate")
    with pytest.raises(InvalidImage, match="a TIFF file this service cannot decode: "):
        decode_image(buffer.getvalue(), **LIMITS)
    with pytest.raises(InvalidImage, match=r"not a supported image \(accepted: PNG"):
        decode_image(b"%PDF-1.7\n" + b"x" * 200, **LIMITS)
