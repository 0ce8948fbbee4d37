"""Still images: every mode and malformed file a user may bring, read as 8-bit RGB or refused clearly."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animate_cli.errors import MediaError
from animate_cli.media.images import MAX_IMAGE_PIXELS, is_image_path, read_image, write_image

is_root = hasattr(os, "geteuid") and os.geteuid() == 0


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit_rgb(path: Path, samples: np.ndarray) -> Path:
    """Write an (H, W, 3) uint16 array as a 16-bit RGB PNG (Pillow cannot write these)."""
    height, width = samples.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # depth 16, colour type 2 = RGB
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    data = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A real 4x4 PNG whose IHDR (and its CRC) claim ``width`` x ``height``: the pixel data is tiny."""
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path)
    data = bytearray(path.read_bytes())
    # Signature (8) + chunk length (4) + b"IHDR" (4): width and height follow, then 5 bytes, then the CRC.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", image)
    result = read_image(tmp_path / "a.png")
    assert result.dtype == np.uint8 and result.shape == (12, 17, 3)
    np.testing.assert_array_equal(result, image)


@pytest.mark.parametrize("suffix", [".bmp", ".tif"])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    image = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    write_image(tmp_path / f"a{suffix}", image)
    np.testing.assert_array_equal(read_image(tmp_path / f"a{suffix}"), image)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_round_trip_closely(tmp_path: Path, suffix: str) -> None:
    image = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    write_image(tmp_path / f"a{suffix}", image)
    result = read_image(tmp_path / f"a{suffix}")
    assert result.shape == (16, 16, 3)
    assert np.abs(result.astype(int) - image).max() <= 4


def test_rgba_is_composited_over_the_background(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent
    rgba[0, 2] = (255, 0, 0, 128)  # half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white = read_image(tmp_path / "a.png")
    assert white[0, 0].tolist() == [255, 0, 0]
    assert white[0, 1].tolist() == [255, 255, 255]
    assert white[0, 2].tolist() == [255, 127, 127]
    black = read_image(tmp_path / "a.png", background=(0, 0, 0))
    assert black[0, 1].tolist() == [0, 0, 0]
    assert black[0, 2].tolist() == [128, 0, 0]


def test_grey_with_alpha_is_composited(tmp_path: Path) -> None:
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", background=(1, 2, 3))[0, 0].tolist() == [1, 2, 3]


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.save(tmp_path / "a.png", transparency=0)
    result = read_image(tmp_path / "a.png", background=(9, 9, 9))
    assert result[0, 0].tolist() == [9, 9, 9]
    assert result[1, 1].tolist() == [0, 255, 0]


def test_grey_becomes_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 77], [200, 255]], dtype=np.uint8), "L").save(tmp_path / "a.png")
    result = read_image(tmp_path / "a.png")
    assert result.shape == (2, 2, 3)
    assert result[0, 1].tolist() == [77, 77, 77]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    samples = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(samples).save(tmp_path / "a.png")
    result = read_image(tmp_path / "a.png")[:, :, 0]
    assert result.tolist() == [[0, 4], [128, 255]]


def test_16_bit_rgb_is_scaled(tmp_path: Path) -> None:
    samples = np.array([[[0, 1000, 65535], [32768, 40000, 257]]], dtype=np.uint16).repeat(2, axis=0)
    result = read_image(png_16bit_rgb(tmp_path / "a.png", samples))
    expected = np.round(samples / 257)
    assert np.abs(result.astype(int) - expected).max() <= 1


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "a.jpg")
    result = read_image(tmp_path / "a.jpg")
    assert result.shape == (8, 8, 3)
    assert np.abs(result[4, 4].astype(int) - [255, 0, 0]).max() <= 8


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = np.zeros((20, 40, 3), dtype=np.uint8)
    image[:5, :5] = 255  # white mark in the top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise
    Image.fromarray(image).save(tmp_path / "a.jpg", exif=exif, quality=95)
    result = read_image(tmp_path / "a.jpg")
    assert result.shape == (40, 20, 3)
    assert result[:5, -5:].mean() > 200  # the mark is now top-right
    assert result[:5, :5].mean() < 50


def test_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = png_with_header_size(tmp_path / "image.png", 20000, 20000)
    start = time.perf_counter()
    with pytest.raises(MediaError, match=r"image\.png: .*larger than the 67,108,864-pixel limit"):
        read_image(path)
    assert time.perf_counter() - start < 1.0


def test_header_just_over_our_limit_names_its_size(tmp_path: Path) -> None:
    # 81 Mpx: above our limit, below Pillow's own decompression-bomb threshold.
    path = png_with_header_size(tmp_path / "image.png", 9000, 9000)
    assert 9000 * 9000 > MAX_IMAGE_PIXELS
    with pytest.raises(MediaError, match=r"image\.png: 9000x9000 is larger than the 67,108,864-pixel limit"):
        read_image(path)


def test_one_pixel_image_is_too_small(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(MediaError, match=r"dot\.png: image is too small \(1x1"):
        read_image(tmp_path / "dot.png")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nope\.png: no such file"):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.png: is empty"):
        read_image(tmp_path / "empty.png")


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="is a folder"):
        read_image(tmp_path)


def test_text_file_named_png(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("hello")
    with pytest.raises(MediaError, match=r"fake\.png: not an image"):
        read_image(tmp_path / "fake.png")


def test_truncated_png(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"cut\.png: corrupt or truncated image"):
        read_image(tmp_path / "cut.png")


@pytest.mark.skipif(is_root, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(path)
    path.chmod(0)
    with pytest.raises(MediaError, match=r"secret\.png: permission denied"):
        read_image(path)


def test_write_image_refuses_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"a\.xyz: unsupported image type '\.xyz'"):
        write_image(tmp_path / "a.xyz", np.zeros((2, 2, 3), dtype=np.uint8))


def test_write_image_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        write_image(tmp_path / "missing" / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))


def test_write_image_rejects_malformed_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        write_image(tmp_path / "a.png", np.zeros((2, 2), dtype=np.uint8))


def test_write_image_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", True),
        ("A.JPG", True),
        ("b.jpeg", True),
        ("c.webp", True),
        ("d.bmp", True),
        ("e.mp4", False),
        ("f", False),
    ],
)
def test_is_image_path(name: str, expected: bool) -> None:
    assert is_image_path(name) is expected
