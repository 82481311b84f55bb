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

    original = compose._normalised_blur
    calls = [0]

    def buggy(*arguments):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 5:
            raise ZeroDivisionError("division by zero")
        return original(*arguments)

    monkeypatch.setattr(compose, "_normalised_blur", buggy)
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
    def video_frames() -> int:
        return sum(type(thing) is av.VideoFrame for thing in gc.get_objects())

    gc.collect()
    gc.disable()
    try:
        before = video_frames()  # what earlier tests left referenced
        with VideoReader(rotated) as reader:
            count = 0
            for frame in reader.frames():
                assert frame.rgb.shape == (160, 120, 3)  # turned upright
                count += 1
            alive = video_frames() - before
    finally:
        gc.enable()
    assert count == 48 and alive <= 4


# ---------------------------------------------------------------------------------------------------
# Compositing on the decoded planes


def _planes_of(rgb: np.ndarray, colorspace: int = 1):  # type: ignore[no-untyped-def]
    from bgremove.yuv import rgb_to_yuv420

    return rgb_to_yuv420(np.ascontiguousarray(rgb), colorspace)


@pytest.mark.parametrize("mode", ["blur", "small-blur", "bg-color", "bg", "desaturate"])
def test_planes_keep_the_subject_exactly_and_match_the_rgb_output(mode: str, astronaut: np.ndarray) -> None:
    from dataclasses import replace

    from bgremove.compose import make_compositor
    from bgremove.config import CompositeConfig, CompositeMode
    from bgremove.types import Frame
    from bgremove.yuv import rgb_to_yuv420

    rgb = np.ascontiguousarray(astronaut[:240, :320])
    frame = Frame(rgb=rgb, yuv=_planes_of(rgb, 6))
    alpha = np.zeros((240, 320), np.float32)
    alpha[:, :160] = 1.0
    alpha[:, 150:170] = np.linspace(1, 0, 20, dtype=np.float32)
    config = {"blur": CompositeConfig(CompositeMode.BLUR, blur=45),
              "small-blur": CompositeConfig(CompositeMode.BLUR, blur=9),
              "bg-color": CompositeConfig(CompositeMode.COLOR, color=(0, 255, 0)),
              "bg": CompositeConfig(CompositeMode.IMAGE),
              "desaturate": CompositeConfig(CompositeMode.DESATURATE)}[mode]
    config = replace(config, decontaminate=False)  # videos' default: the colour step only with --quality
    compositor = make_compositor(config, np.ascontiguousarray(astronaut[::-1, ::-1]))
    planes = compositor.planes(frame, alpha)  # type: ignore[attr-defined]
    assert planes is not None and planes.colorspace == 6 and planes.a is None
    assert np.array_equal(planes.y[:, :150], frame.yuv.y[:, :150])  # the subject, untouched
    assert np.array_equal(planes.u[:, :75], frame.yuv.u[:, :75])
    expected = rgb_to_yuv420(compositor(frame, alpha), 6)  # the RGB output, converted
    assert np.abs(planes.y.astype(int) - expected.y).mean() < 1.0
    assert np.abs(planes.u.astype(int) - expected.u).mean() < 1.5
    assert np.abs(planes.v.astype(int) - expected.v).mean() < 1.5


def test_opaque_planes_are_made_in_the_encoders_layout_and_go_out_without_a_copy(astronaut: np.ndarray) -> None:
    from bgremove.compose import blend_uint8, make_compositor
    from bgremove.config import CompositeConfig, CompositeMode
    from bgremove.types import Frame
    from bgremove.video import planes_frame

    rgb = np.ascontiguousarray(astronaut[:120, :160])
    frame = Frame(rgb=rgb, yuv=_planes_of(rgb))
    alpha = np.tile(np.linspace(0, 1, 160, dtype=np.float32), (120, 1))
    compositor = make_compositor(CompositeConfig(CompositeMode.BLUR, blur=45, decontaminate=False))
    planes = compositor.planes(frame, alpha)  # type: ignore[attr-defined]
    assert planes.buffer is not None and planes.buffer.shape == (180, 160)
    assert np.shares_memory(planes.y, planes.buffer) and np.shares_memory(planes.v, planes.buffer)
    background = compositor.background_planes(frame, alpha, 1)  # type: ignore[attr-defined]
    matte = np.asarray(np.clip(alpha * 255 + 0.5, 0, 255), np.uint8)
    assert np.array_equal(planes.y, blend_uint8(frame.yuv.y, background.y, matte))  # what blend_uint8 makes
    encoded = planes_frame(planes)
    assert encoded.planes[0].buffer_ptr == planes.buffer.ctypes.data  # the encoder reads the buffer itself
    assert (encoded.format.name, encoded.width, encoded.height) == ("yuv420p", 160, 120)
    assert encoded.colorspace == 1 and encoded.color_range == 1
    for plane, expected in zip(encoded.planes, (planes.y, planes.u, planes.v), strict=True):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        assert np.array_equal(rows, expected)


def test_decoded_planes_are_read_only_views_of_the_frame(clip) -> None:  # type: ignore[no-untyped-def]
    from bgremove.video import VideoReader

    with av.open(str(clip)) as container:
        reference = [frame.to_ndarray() for frame in container.decode(video=0)]  # Y' rows, then Cb, Cr
    with VideoReader(clip, keep_yuv=True) as reader:
        frames = list(reader.frames())
    assert len(frames) == len(reference) == 48
    for frame, stacked in zip(frames, reference, strict=True):
        assert frame.yuv is not None and not frame.yuv.y.flags.writeable
        chroma = stacked.reshape(-1)[120 * 160 :]
        assert np.array_equal(frame.yuv.y, stacked[:120])  # every frame its own, held after decoding
        assert np.array_equal(frame.yuv.u, chroma[: 60 * 80].reshape(60, 80))
        assert np.array_equal(frame.yuv.v, chroma[60 * 80 :].reshape(60, 80))
    with pytest.raises(ValueError):
        frames[0].yuv.y[0, 0] = 0  # type: ignore[union-attr]


def test_transparent_planes_are_the_frame_planes_with_the_matte(astronaut: np.ndarray) -> None:
    from bgremove.compose import make_compositor
    from bgremove.config import CompositeConfig, CompositeMode
    from bgremove.types import Frame

    rgb = np.ascontiguousarray(astronaut[:64, :64])
    frame = Frame(rgb=rgb, yuv=_planes_of(rgb))
    alpha = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    planes = make_compositor(CompositeConfig(CompositeMode.TRANSPARENT, decontaminate=False)).planes(frame, alpha)  # type: ignore[attr-defined]
    assert planes.a is not None and planes.a[0, 0] == 0 and planes.a[0, 63] == 255
    shows = planes.a > 0  # the frame's own planes where anything shows, black (16, 128, 128) elsewhere
    assert np.array_equal(planes.y[shows], frame.yuv.y[shows]) and (planes.y[~shows] == 16).all()
    chroma_shows = shows[::2, ::2] | shows[1::2, 1::2]
    assert np.array_equal(planes.u[chroma_shows], frame.yuv.u[chroma_shows])
    assert (planes.u[~(shows[::2, ::2] | shows[::2, 1::2] | shows[1::2, ::2] | shows[1::2, 1::2])] == 128).all()


def test_frames_without_planes_take_the_rgb_way(astronaut: np.ndarray) -> None:
    from bgremove.compose import make_compositor
    from bgremove.config import CompositeConfig, CompositeMode
    from bgremove.types import Frame

    compositor = make_compositor(CompositeConfig(CompositeMode.BLUR))
    frame = Frame(rgb=np.ascontiguousarray(astronaut[:64, :64]))
    assert compositor.planes(frame, np.ones((64, 64), np.float32)) is None  # type: ignore[attr-defined]


def test_passthrough_only_where_the_planes_can_go_out_as_they_are(tmp_path, frames_160) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from video_helpers import write_clip

    from bgremove.config import CompositeMode
    from bgremove.video import VIDEO_FORMATS, probe_video, yuv_passthrough

    info = probe_video(write_clip(tmp_path / "plain.mp4", frames_160, fps=24))
    assert info.pix_fmt == "yuv420p" and info.colorspace == 2
    assert yuv_passthrough(info, VIDEO_FORMATS["mp4"], CompositeMode.BLUR) == 2
    assert yuv_passthrough(info, VIDEO_FORMATS["webm"], CompositeMode.TRANSPARENT) == 2
    assert yuv_passthrough(info, VIDEO_FORMATS["mov"], CompositeMode.TRANSPARENT) is None  # ProRes 4:4:4
    assert yuv_passthrough(info, VIDEO_FORMATS["mp4"], CompositeMode.MASK) is None
    assert yuv_passthrough(replace(info, rotation=90), VIDEO_FORMATS["mp4"], CompositeMode.BLUR) is None
    assert yuv_passthrough(replace(info, width=161), VIDEO_FORMATS["mp4"], CompositeMode.BLUR) is None
    assert yuv_passthrough(replace(info, color_range=2), VIDEO_FORMATS["mp4"], CompositeMode.BLUR) is None
    assert yuv_passthrough(replace(info, colorspace=9), VIDEO_FORMATS["mp4"], CompositeMode.BLUR) is None


@pytest.mark.parametrize(("arguments", "suffix"), [(["--blur", "45"], ".mp4"), (["--transparent"], ".webm")])
def test_passthrough_output_keeps_the_input_matrix_and_looks_like_the_rgb_output(
    run, clip, monkeypatch, arguments, suffix
) -> None:  # type: ignore[no-untyped-def]
    from video_helpers import decode_frames

    result = run(clip, *arguments, "-q", "--suffix", "_planes")
    assert result.exit_code == 0, result.output
    monkeypatch.setattr("bgremove.video.yuv_passthrough", lambda *_: None)  # _process_video imports it there
    result = run(clip, *arguments, "-q", "--suffix", "_rgb")
    assert result.exit_code == 0, result.output
    with av.open(str(clip.with_name(f"clip_planes{suffix}"))) as container:
        assert container.streams.video[0].codec_context.colorspace == 2  # as the input: unspecified
    with av.open(str(clip.with_name(f"clip_rgb{suffix}"))) as container:
        assert container.streams.video[0].codec_context.colorspace == 1  # converted to BT.709
    transparent = suffix == ".webm"
    fmt = "rgba" if transparent else "rgb24"
    planes, _, _ = decode_frames(clip.with_name(f"clip_planes{suffix}"), fmt=fmt, alpha_decoder=transparent)
    rgb, _, _ = decode_frames(clip.with_name(f"clip_rgb{suffix}"), fmt=fmt, alpha_decoder=transparent)
    assert len(planes) == len(rgb) == 48
    # as it shows: weighted by the alpha (both ways make fully transparent pixels black, and a pixel
    # that hardly shows next to them is compressed differently, each in its own colour step)
    weights = [a[..., 3:].astype(float) if transparent else np.ones((*a.shape[:2], 1)) for a in planes]
    assert np.mean([(np.abs(a[..., :3].astype(int) - b[..., :3]) * weight).sum() / (3 * weight.sum())
                    for a, b, weight in zip(planes, rgb, weights, strict=True)]) < 2.5
