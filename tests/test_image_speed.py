"""The fast image paths: PNG through OpenCV stays lossless, JPEG reading without extra copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bgremove.media import read_image, write_image


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_png_is_lossless_and_in_rgb_order(channels: int | None, astronaut: np.ndarray, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels = astronaut[:123, :77] if channels == 3 else astronaut[:123, :77, 0]
    if channels == 4:
        pixels = np.dstack([astronaut[:123, :77], rng.integers(0, 256, (123, 77), dtype=np.uint8)])
    pixels = np.ascontiguousarray(pixels)
    write_image(tmp_path / "out.png", pixels, "PNG")
    with Image.open(tmp_path / "out.png") as written:
        assert written.format == "PNG"
        assert written.mode == {None: "L", 3: "RGB", 4: "RGBA"}[channels]
        assert np.array_equal(np.asarray(written), pixels)
    assert not [path.name for path in tmp_path.iterdir() if path.name != "out.png"]


def test_plain_rgb_jpeg_reads_the_same_pixels_as_pillow(astronaut: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(astronaut).save(path, quality=90)
    frame, info = read_image(path)
    with Image.open(path) as opened:
        assert np.array_equal(frame.rgb, np.asarray(opened.convert("RGB")))
    assert frame.rgb.flags["C_CONTIGUOUS"] and frame.alpha is None and (info.width, info.height) == (512, 512)
