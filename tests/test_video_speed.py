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


# ---------------------------------------------------------------------------------------------------
# Decode, segment and encode in threads


@pytest.fixture(scope="module")
def frames_160() -> list[np.ndarray]:
    from skimage import data
    from video_helpers import moving_frames

    return moving_frames(np.ascontiguousarray(data.astronaut()), 48, 160, 120)


@pytest.fixture
def clip(tmp_path, frames_160):  # type: ignore[no-untyped-def]
    from video_helpers import write_clip

    return write_clip(tmp_path / "clip.mp4", frames_160, fps=24, audio_seconds=2.0)


def _bgremove_threads() -> list[str]:
    import threading

    return [thread.name for thread in threading.enumerate() if thread.name.startswith("bgremove-")]


def _leftovers(folder) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(path.name for path in folder.iterdir() if path.name != "clip.mp4")


def test_threaded_video_writes_every_frame_in_order(run, clip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bgremove import video

    written = []
    original = video.VideoWriter.write

    def record(self, pixels, frame):  # type: ignore[no-untyped-def]
        written.append((frame.index, frame.timestamp))
        original(self, pixels, frame)

    monkeypatch.setattr(video.VideoWriter, "write", record)
    result = run(clip, "--blur", "45", "-q")
    assert result.exit_code == 0, result.output
    assert [index for index, _ in written] == list(range(48))
    assert all(later > earlier for (_, earlier), (_, later) in zip(written, written[1:], strict=False))
    assert not _bgremove_threads()


def test_encoder_error_mid_video_is_one_line_and_leaves_nothing(run, clip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bgremove import video
    from bgremove.errors import OutputError

    original = video.VideoWriter.write

    def failing(self, pixels, frame):  # type: ignore[no-untyped-def]
        if frame.index == 7:
            raise OutputError(f"{self.info.path}: encoding failed (no space left on device)")
        original(self, pixels, frame)

    monkeypatch.setattr(video.VideoWriter, "write", failing)
    result = run(clip, "--blur", "45", "-q")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("bgremove: error")]
    assert errors == [f"bgremove: error: {clip}: encoding failed (no space left on device)"]
    assert _leftovers(clip.parent) == [] and not _bgremove_threads()


def test_decoder_error_mid_video_is_one_line_and_leaves_nothing(run, clip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bgremove import video
    from bgremove.errors import UnsupportedMedia

    original = video.VideoReader._to_frame

    def failing(self, decoded, timestamp, duration):  # type: ignore[no-untyped-def]
        if self.frames_read == 30:
            raise UnsupportedMedia(f"{self.path}: corrupt or truncated video at {timestamp:.2f} s (bad data)")
        return original(self, decoded, timestamp, duration)

    monkeypatch.setattr(video.VideoReader, "_to_frame", failing)
    result = run(clip, "--bg-color", "green", "-q")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("bgremove: error")]
    assert errors == [f"bgremove: error: {clip}: corrupt or truncated video at 1.25 s (bad data)"]
    assert _leftovers(clip.parent) == [] and not _bgremove_threads()


def test_a_bug_in_the_main_thread_stops_the_others(run, clip, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bgremove import compose

    original = compose.BlurCompositor.background
    calls = [0]

    def buggy(self, frame, alpha, behind):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 5:
            raise ZeroDivisionError("division by zero")
        return original(self, frame, alpha, behind)

    monkeypatch.setattr(compose.BlurCompositor, "background", buggy)
    result = run(clip, "--blur", "45", "-q")
    assert result.exit_code == 1
    assert f"bgremove: error: {clip}: unexpected ZeroDivisionError: division by zero" in result.output
    assert _leftovers(clip.parent) == [] and not _bgremove_threads()


def test_sigterm_stops_a_threaded_video_promptly_and_leaves_nothing(tmp_path, frames_160) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from video_helpers import write_clip

    long_clip = write_clip(tmp_path / "long.mp4", frames_160 * 20, fps=24, audio_seconds=40.0)  # 40 s
    environment = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([sys.executable, "-m", "bgremove", str(long_clip), "--blur", "45", "-q"],
                               stderr=subprocess.PIPE, text=True, env=environment)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(path.suffix == ".part" for path in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)  # well into the frames
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, errors = process.communicate(timeout=30)
    assert time.monotonic() - started < 5.0
    assert process.returncode == 130, errors
    assert "interrupted" in errors and "Traceback" not in errors
    assert sorted(path.name for path in tmp_path.iterdir()) == ["long.mp4"]


def test_decoded_frames_are_freed_without_the_cyclic_gc(tmp_path, frames_160) -> None:  # type: ignore[no-untyped-def]
    """Reading a frame's side data makes PyAV cache it on the frame (a reference cycle): the reader must
    not, or every decoded frame waits for the cyclic GC (hundreds of 1080p frames did)."""
    import gc

    from video_helpers import write_clip

    from bgremove.video import VideoReader

    rotated = write_clip(tmp_path / "rotated.mp4", frames_160, fps=24, rotation=90)
    gc.collect()
    gc.disable()
    try:
        with VideoReader(rotated) as reader:
            count = 0
            for frame in reader.frames():
                assert frame.rgb.shape == (160, 120, 3)  # turned upright
                count += 1
            alive = sum(type(thing) is av.VideoFrame for thing in gc.get_objects())
    finally:
        gc.enable()
    assert count == 48 and alive <= 4
