"""The fast paths of the video side: RGB to YUV without swscale."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")


@pytest.mark.parametrize("channels", [3, 4])
def test_yuv420_frame_matches_swscale_bt709(channels: int, astronaut: np.ndarray) -> None:
    from av.video.reformatter import Colorspace

    from bgremove.video import yuv420_frame

    rng = np.random.default_rng(1)
    pixels = np.ascontiguousarray(astronaut[:250, :322])  # even, and a line size with padding
    if channels == 4:
        pixels = np.dstack([pixels, rng.integers(0, 256, pixels.shape[:2], dtype=np.uint8)])
    ours = yuv420_frame(pixels)
    reference = av.VideoFrame.from_ndarray(pixels, format="rgba" if channels == 4 else "rgb24").reformat(
        format=ours.format.name, dst_colorspace=Colorspace.ITU709)
    assert ours.format.name == ("yuva420p" if channels == 4 else "yuv420p")
    assert (ours.width, ours.height) == (322, 250)
    assert ours.colorspace == 1 and ours.color_range == 1
    for index, (plane, expected) in enumerate(zip(ours.planes, reference.planes, strict=True)):
        ours_rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        expected_rows = np.frombuffer(expected, np.uint8).reshape(expected.height, expected.line_size)[
            :, : expected.width]
        difference = np.abs(ours_rows.astype(int) - expected_rows)
        if index == 0:  # luma: the same to rounding
            assert difference.max() <= 1
        elif index == 3:  # alpha: copied as it is (swscale's own can be off by one)
            assert np.array_equal(ours_rows, pixels[..., 3]) and difference.max() <= 1
        else:  # chroma: sited a little differently
            assert difference.mean() < 0.5
