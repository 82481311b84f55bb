"""Reading and writing videos with PyAV: probe, a streaming frame reader, an atomic writer with audio.

PyAV carries FFmpeg (libx264, libvpx-vp9, ProRes, AAC, Opus) in its wheel, so no ``ffmpeg`` binary is
needed. ``av`` is imported inside the functions here, never at module level: ``import bgremove`` and
``bgremove --help`` stay free of it. Images stay in ``media.py``; this module is the video side of it.

Decisions, in one place:

- **Orientation.** Frames are read in *display* orientation (the stream's display matrix applied,
  as ``media.read_image`` applies EXIF), because segmentation models want people upright. The writer
  turns the pixels back to the *stored* orientation and writes the input's display matrix again, so the
  output has the input's stored size and the same rotation metadata. Flips in a display matrix are
  carried over unchanged but not applied for segmentation (a mirrored person is still a person).
- **Odd sizes.** H.264 in yuv420p needs even width and height: an odd dimension is *padded* by one
  pixel that repeats the last row or column (nothing of the picture is lost; the output is one pixel
  wider or taller). VP9 and ProRes take odd sizes as they are.
- **Timestamps.** Output frames keep the input's timestamps (variable frame rate survives), shifted by
  ``--start``; frame rate, time base and rotation are copied.
- **Audio.** Every audio stream is copied packet by packet when the output container accepts its codec,
  else decoded and re-encoded (AAC in MP4/MOV, Opus in WebM). ``--start``/``--end`` trim it too (to
  the packet for copied streams, to the frame for re-encoded ones). Subtitle and data streams are dropped.
- **Colour.** Frames are decoded to RGB with the input's own matrix and range; outputs are written
  as BT.709 limited range, tagged so, with the input's primaries and transfer tags kept. Where the
  input's decoded 4:2:0 planes can go out as they are (``yuv_passthrough``), compositors work on them:
  the subject's pixels stay the input's exactly and the output keeps the input's matrix tag.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .config import DEFAULT_PRESET, CompositeMode, VideoConfig
from .errors import OutputError, UnsupportedMedia
from .media import atomic_output, check_readable_file
from .types import Frame, RGBImage, placeholder_pixels
from .yuv import BT709, YUVPlanes, rgb_to_yuv420

logger = logging.getLogger(__name__)

# FFmpeg demuxers that open single pictures or text as a "video": such a file is not a video to us.
_NOT_VIDEO_DEMUXERS = frozenset({"image2", "tty", "lavfi", "gif", "apng", "webp_pipe", "mjpeg"})

@dataclass(frozen=True)
class VideoFormat:
    """One video output format: container and the codec that fills it for opaque or transparent output."""

    name: str  # the --format value: mp4, webm, mov
    muxer: str  # FFmpeg's muxer name
    extension: str
    opaque_codec: str
    opaque_pix_fmt: str
    alpha_codec: str | None
    alpha_pix_fmt: str | None
    audio_copy: frozenset[str]  # audio codecs the container takes as they are
    audio_encoder: str  # what other audio is re-encoded to


VIDEO_FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat(
        "mp4", "mp4", ".mp4", "libx264", "yuv420p", None, None,
        frozenset({"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3", "mp2"}), "aac",
    ),
    "mov": VideoFormat(
        "mov", "mov", ".mov", "libx264", "yuv420p", "prores_ks", "yuva444p10le",
        frozenset({"aac", "mp3", "alac", "ac3", "eac3", "mp2", "pcm_s16le", "pcm_s16be", "pcm_s24le",
                   "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8"}), "aac",
    ),
    "webm": VideoFormat(
        "webm", "webm", ".webm", "libvpx-vp9", "yuv420p", "libvpx-vp9", "yuva420p",
        frozenset({"opus", "vorbis"}), "libopus",
    ),
}


def video_output_format(mode: CompositeMode, requested: str | None) -> VideoFormat:
    """The format a video output is written in: MP4 (H.264) for opaque output and mattes, WebM (VP9
    with alpha) for transparent output, unless ``--format`` names another; MP4 cannot hold alpha."""
    if requested is None:
        return VIDEO_FORMATS["webm" if mode is CompositeMode.TRANSPARENT else "mp4"]
    chosen = VIDEO_FORMATS.get(requested.lower())
    if chosen is None:
        raise OutputError(f"unknown video format '{requested}' (choose {', '.join(VIDEO_FORMATS)})")
    if mode is CompositeMode.TRANSPARENT and chosen.alpha_codec is None:
        raise OutputError(f"{requested} (H.264) cannot hold transparency; use --format webm or mov")
    return chosen


# ---------------------------------------------------------------------------------------------------
# Probing


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, when the container says


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container says, plus its first frame's orientation.

    ``width`` x ``height`` is the *display* size (rotation applied), the size of the frames the reader
    yields. ``fps`` is the average frame rate; ``frames`` is exact when the container counts them, else
    an estimate from duration and rate. ``duration`` is the video stream's, in seconds. ``rotation`` is
    the counter-clockwise turn, a multiple of 90, that shows the stored picture upright.
    """

    path: Path
    container: str
    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int
    duration: float
    start_time: float  # the container's start, which timestamps count from
    rotation: int = 0
    display_matrix: tuple[int, ...] | None = None
    color_primaries: int = 2  # FFmpeg's "unspecified"
    color_trc: int = 2
    audio: tuple[AudioStreamInfo, ...] = ()
    pix_fmt: str = ""  # the first frame's, as decoded
    colorspace: int = 2  # its matrix (FFmpeg's AVColorSpace)
    color_range: int = 0  # 0 unspecified, 1 limited ("tv"), 2 full ("pc")

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the pictures as stored in the file."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    # PyAV's messages end with the FFmpeg call that failed or the file name (": 'avcodec_open2()'",
    # ": 'clip.mp4'"): the message already names the file, and users need no function names.
    text = re.sub(r"(: '[^']*')+$", "", text)
    if text.startswith("[Errno"):
        text = text.split("] ", 1)[-1]
    return text or type(error).__name__


def _stream_duration(stream: Any, container: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _is_cover_art(stream: Any) -> bool:
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _video_stream(container: Any, path: Path) -> Any:
    streams = [stream for stream in container.streams.video if not _is_cover_art(stream)]
    if not streams:
        kinds = sorted({stream.type for stream in container.streams})
        has = f" (it has {' and '.join(kinds)} only)" if kinds else ""
        raise UnsupportedMedia(f"{path}: no video stream{has}")
    return streams[0]


def _open_input(path: Path) -> Any:
    """Open ``path`` with FFmpeg as a video container; ``UnsupportedMedia`` when it is not one."""
    import av

    check_readable_file(path)
    try:
        container = av.open(str(path), "r", metadata_errors="replace")
    except av.error.FFmpegError as error:
        raise UnsupportedMedia(f"{path}: not an image or video bgremove can read ({_reason(error)})") from None
    demuxers = set(container.format.name.split(","))
    if demuxers & _NOT_VIDEO_DEMUXERS or any(name.endswith("_pipe") for name in demuxers):
        container.close()
        raise UnsupportedMedia(f"{path}: not an image or video bgremove can read (FFmpeg sees {container.format.name})")
    return container


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    import av

    side_data = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if side_data is None:
        return None
    raw = bytes(side_data)
    return struct.unpack("=9i", raw[:36]) if len(raw) >= 36 else None


def matrix_rotation(matrix: tuple[int, ...] | None) -> float:
    """The counter-clockwise turn in degrees a display matrix applies (FFmpeg's ``av_display_rotation_get``;
    computed from the matrix the writer copies, so reading and writing agree by construction)."""
    if matrix is None:
        return 0.0
    scale_x, scale_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if scale_x == 0 or scale_y == 0:
        return 0.0
    return -math.degrees(math.atan2(matrix[1] / scale_y, matrix[0] / scale_x))


def _quarter_turns(frame: Any) -> int:
    """Quarter turns (counter-clockwise) that show the frame upright; other angles round to the nearest."""
    return int(round(matrix_rotation(_display_matrix(frame)) / 90.0)) % 4


def probe_video(path: Path) -> VideoInfo:
    """Describe a video by its content and decode its first frame (which proves it can be read).

    ``UnsupportedMedia`` with a one-line reason for: not a media file, no video stream (audio only, a
    picture), a stream FFmpeg cannot decode, and a file with no frame in it (empty or cut short).
    """
    import av

    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
        first = None
        try:
            # demux ends with an empty packet per stream, whose decode() flushes frames a decoder held back
            for packet in container.demux(stream):
                decoded = packet.decode()
                if decoded:
                    first = decoded[0]
                    break
        except av.error.FFmpegError as error:
            raise UnsupportedMedia(f"{path}: corrupt or truncated video ({_reason(error)})") from None
        if first is None:
            raise UnsupportedMedia(f"{path}: video stream has no frames (empty or truncated file)")
        rotation = 90 * _quarter_turns(first)
        stored_width, stored_height = first.width, first.height
        width, height = (stored_height, stored_width) if rotation % 180 else (stored_width, stored_height)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(30)
        fps = Fraction(fps)
        duration = _stream_duration(stream, container)
        if duration is None:
            duration = 0.0
        frames = int(stream.frames or 0) or max(1, round(duration * fps))
        start_time = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        audio = tuple(
            AudioStreamInfo(
                index=audio_stream.index,
                codec=audio_stream.codec_context.name if audio_stream.codec_context is not None else "unknown",
                sample_rate=audio_stream.codec_context.sample_rate or 0,
                channels=audio_stream.codec_context.channels or 0,
                duration=_stream_duration(audio_stream, container),
            )
            for audio_stream in container.streams.audio
        )
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=codec,
            width=width,
            height=height,
            fps=fps,
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frames=frames,
            duration=duration,
            start_time=start_time,
            rotation=rotation,
            display_matrix=_display_matrix(first),
            color_primaries=int(first.color_primaries or 2),
            color_trc=int(first.color_trc or 2),
            audio=audio,
            pix_fmt=first.format.name,
            colorspace=int(first.colorspace or 2),
            color_range=int(first.color_range or 0),
        )
    finally:
        container.close()


def yuv_passthrough(info: VideoInfo, fmt: VideoFormat, mode: CompositeMode) -> int | None:
    """The colour matrix with which the input's decoded planes can go to the output as they are (the
    subject's pixels untouched, only the new background converted), or None where they cannot: an
    input that is not 8-bit limited-range 4:2:0 in BT.601/709 (or unspecified), a rotated or odd-sized
    one, or an output that is not 4:2:0 (ProRes, masks)."""
    from .yuv import SUPPORTED_MATRICES

    alpha = mode is CompositeMode.TRANSPARENT
    output_pix_fmt = fmt.alpha_pix_fmt if alpha else fmt.opaque_pix_fmt
    if (
        mode is CompositeMode.MASK
        or output_pix_fmt not in ("yuv420p", "yuva420p")
        or info.pix_fmt != "yuv420p"
        or info.color_range == 2
        or info.colorspace not in SUPPORTED_MATRICES
        or info.rotation % 360
        or info.width % 2
        or info.height % 2
    ):
        return None
    return info.colorspace


def decoder_threads() -> int:
    """Decoder and encoder threads: all cores, at most 8; segmentation and compositing run between them."""
    return max(1, min(os.cpu_count() or 1, 8))


# ---------------------------------------------------------------------------------------------------
# Reading


class _BestEffortClock:
    """FFmpeg's ``guess_correct_pts``: trust pts unless they have gone backwards more often than dts.

    AVI stores no pts; with B-frames the pts FFmpeg makes up for it run out of order, while the dts of
    the decoded frames are right.
    """

    def __init__(self, prefer_dts: bool = False) -> None:
        # A container that stores no pts at all (AVI) starts out trusting dts.
        self.faulty_pts, self.faulty_dts = (1, 0) if prefer_dts else (0, 0)
        self.last_pts: int | None = None
        self.last_dts: int | None = None

    def timestamp(self, pts: int | None, dts: int | None) -> int | None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts


class VideoReader:
    """Decode a video's frames one at a time, in display orientation, as ``Frame(rgb, index, timestamp)``.

    ``timestamp`` is the frame's pts x time base in seconds from the container's start; ``duration``
    the frame's own. Nothing is held beyond the frame being decoded: memory does not grow with length.
    A decoding error, or a stream that stops well before the duration its container states (a cut-off
    file), raises ``UnsupportedMedia`` while iterating.
    """

    def __init__(self, path: Path, info: VideoInfo | None = None, *, keep_yuv: bool = False,
                 preview: Callable[[int, int], tuple[int, int] | None] | None = None) -> None:
        self.path = path
        self.keep_yuv = keep_yuv  # also give each frame its decoded planes (Frame.yuv), where 4:2:0
        # With ``keep_yuv``: frames that get their planes get no full-size RGB either (a placeholder),
        # only a ``Frame.preview`` of the size ``preview(width, height)`` gives (the segmenter's
        # ``model_size``), converted and shrunk in one swscale pass (area averages). It is made when
        # first read (``Frame.make_preview``), by whichever one thread reads them (the segmentation's):
        # 0.5-0.7 ms a 720p frame, which the frames the model skips do not need.
        self.preview = preview
        self.info = info or probe_video(path)
        self._container = _open_input(path)
        self._stream = _video_stream(self._container, path)
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = decoder_threads()
        self.frames_read = 0
        from av.video.reformatter import VideoReformatter

        # One swscale context for the whole video: a new one per frame (what to_ndarray(format=...)
        # does) starts and stops a pool of threads every frame, 2.4 times the CPU. The previews have
        # their own, used in the thread that reads them rather than in the decoder's.
        self._reformatter = VideoReformatter()
        self._preview_reformatter = VideoReformatter()
        # The turn that shows frames upright, as probed from the first frame. Reading each frame's own
        # display matrix would make PyAV cache its side data on the frame, a reference cycle that only
        # the cyclic GC frees: hundreds of decoded frames (500 MB at 1080p) stayed alive between runs.
        self._turns = (self.info.rotation // 90) % 4

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[Frame]:
        """Frames whose timestamp t satisfies ``start <= t < end`` (``end`` None: to the last frame)."""
        import av

        stream = self._stream
        time_base = Fraction(stream.time_base)
        origin = self.info.start_time
        if start > 0:
            target = int((start + origin) / time_base)
            with contextlib.suppress(av.error.FFmpegError):
                self._container.seek(target, stream=stream, backward=True, any_frame=False)
        last_time: float | None = None
        last_end = 0.0
        frame_interval = float(1 / self.info.fps) if self.info.fps else 1 / 30
        epsilon = 1e-6
        clock = _BestEffortClock(prefer_dts="avi" in self.info.container.split(","))
        reached_end = False
        try:
            for packet in self._container.demux(stream):
                if reached_end:
                    break
                for decoded in packet.decode():
                    stamp = clock.timestamp(decoded.pts, decoded.dts)
                    if stamp is not None:
                        timestamp = float(stamp * time_base) - origin
                    else:  # a frame without a timestamp follows the previous one
                        timestamp = (last_time + frame_interval) if last_time is not None else 0.0
                    if last_time is not None and timestamp <= last_time:
                        timestamp = last_time + 1e-4  # keep timestamps increasing, as video mode needs
                    last_time = timestamp
                    if timestamp < start - epsilon:
                        continue
                    if end is not None and timestamp >= end - epsilon:
                        reached_end = True
                        break
                    duration = float(decoded.duration * time_base) if decoded.duration else frame_interval
                    last_end = timestamp + duration
                    yield self._to_frame(decoded, timestamp, duration)
        except av.error.FFmpegError as error:
            at = f" at {last_time:.2f} s" if last_time is not None else ""
            raise UnsupportedMedia(f"{self.path}: corrupt or truncated video{at} ({_reason(error)})") from None
        self._check_complete(start, end, last_end, frame_interval, reached_end)

    def _check_complete(self, start: float, end: float | None, last_end: float, frame_interval: float,
                        reached_end: bool) -> None:
        if self.frames_read == 0:
            span = f"from {start:g} s" + (f" to {end:g} s" if end is not None else "")
            raise UnsupportedMedia(f"{self.path}: no video frames {span} (video is {self.info.duration:.2f} s)")
        if reached_end:
            return
        expected = self.info.duration
        if end is not None:
            expected = min(expected, end)
        # A cut-off Matroska or AVI file decodes without an error; it just stops early.
        tolerance = max(0.25, 3 * frame_interval)
        if expected > 0 and last_end < expected - tolerance:
            raise UnsupportedMedia(
                f"{self.path}: truncated video: frames stop at {last_end:.2f} s of {expected:.2f} s"
            )

    def _to_frame(self, decoded: Any, timestamp: float, duration: float) -> Frame:
        yuv = make_preview = None
        planes = self.keep_yuv and not self._turns and decoded.format.name == "yuv420p" \
            and decoded.width % 2 == 0 and decoded.height % 2 == 0
        size = self.preview(decoded.width, decoded.height) if planes and self.preview is not None else None
        if size is not None:
            make_preview = functools.partial(self._make_preview, decoded, size)
            rgb = placeholder_pixels((decoded.height, decoded.width, 3))
        else:
            rgb = self._reformatter.reformat(decoded, format="rgb24", threads=1).to_ndarray()
        if self._turns:
            rgb = np.rot90(rgb, self._turns)
        if planes:
            # views of the decoded frame's own planes (they keep it alive), not a copy of them
            luma, cb, cr = (_plane_pixels(plane) for plane in decoded.planes[:3])
            yuv = YUVPlanes(luma, cb, cr, self.info.colorspace)
        frame = Frame(rgb=rgb if make_preview is not None else np.ascontiguousarray(rgb), index=self.frames_read,
                      timestamp=timestamp, duration=duration, yuv=yuv, make_preview=make_preview)
        self.frames_read += 1
        return frame

    def _make_preview(self, decoded: Any, size: tuple[int, int]) -> RGBImage:
        return self._preview_reformatter.reformat(
            decoded, format="rgb24", width=size[0], height=size[1], interpolation="AREA", threads=1).to_ndarray()

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_frame(path: Path) -> RGBImage:
    """The first frame of a video in display orientation (a still background for images)."""
    with VideoReader(path) as reader:
        for frame in reader.frames():
            return frame.rgb
    raise UnsupportedMedia(f"{path}: video stream has no frames")


class LoopingVideo:
    """Frames of a background video by time, starting over at its end; decoded in step with the caller.

    Holds the current and the next frame only. ``frame_at(t)`` must be called with non-decreasing ``t``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.info = probe_video(path)
        self._reader: VideoReader | None = None
        self._frames: Iterator[Frame] | None = None
        self._loop_start = 0.0  # caller time at which the current pass began
        self._current: Frame | None = None
        self._next: Frame | None = None
        self._still = False

    def _restart(self, at: float) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = VideoReader(self.path, self.info)
        self._frames = self._reader.frames()
        self._loop_start = at
        self._current = next(self._frames)
        self._next = next(self._frames, None)
        if self._next is None:  # a one-frame video is a still: never reopen it
            self._reader.close()
            self._still = True

    def frame_at(self, time: float) -> RGBImage:
        if self._reader is None:
            self._restart(time)
        assert self._current is not None
        if self._still:
            return self._current.rgb
        while True:
            local = time - self._loop_start
            if self._next is None:
                length = self._current.timestamp + (self._current.duration or 0.0)
                if local < length:
                    return self._current.rgb
                self._restart(self._loop_start + max(length, 1e-3))
                continue
            if local < self._next.timestamp:
                return self._current.rgb
            assert self._frames is not None
            self._current, self._next = self._next, next(self._frames, None)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> LoopingVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------
# Writing


def pad_to_even(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Repeat the last row and/or column once so both dimensions are even (yuv420p needs that)."""
    height, width = pixels.shape[:2]
    pad_bottom, pad_right = height % 2, width % 2
    if not (pad_bottom or pad_right):
        return pixels
    padding = [(0, pad_bottom), (0, pad_right)] + [(0, 0)] * (pixels.ndim - 2)
    return np.pad(pixels, padding, mode="edge")


def _plane_pixels(plane: Any) -> npt.NDArray[np.uint8]:
    """A decoded 8-bit plane's pixels as a read-only array over the frame's own memory (rows
    ``line_size`` apart, which FFmpeg may pad beyond the width)."""
    pixels = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: plane.height, : plane.width]
    pixels.flags.writeable = False  # the input's pixels: nothing may change them in place
    return pixels


def _fill_plane(plane: Any, pixels: npt.NDArray[np.uint8]) -> None:
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    rows[:, : plane.width] = pixels


def planes_frame(planes: YUVPlanes) -> Any:
    """A ``yuv420p`` (or ``yuva420p`` when ``planes.a`` is set) VideoFrame holding ``planes``, tagged
    with their matrix and limited range."""
    import av

    if planes.buffer is not None and planes.a is None:  # composited in yuv420p's layout: no copy
        frame = av.VideoFrame.from_numpy_buffer(planes.buffer, format="yuv420p")
        frame.colorspace = planes.colorspace
        frame.color_range = 1
        return frame
    frame = av.VideoFrame(planes.width, planes.height, "yuv420p" if planes.a is None else "yuva420p")
    for plane, pixels in zip(frame.planes, (planes.y, planes.u, planes.v, planes.a), strict=False):
        assert pixels is not None
        _fill_plane(plane, pixels)
    frame.colorspace = planes.colorspace
    frame.color_range = 1  # limited ("tv")
    return frame


def yuv420_frame(pixels: npt.NDArray[np.uint8], colorspace: int = BT709) -> Any:
    """RGB (H x W x 3) or RGBA (H x W x 4) uint8 with even sizes -> a limited-range ``yuv420p`` or
    ``yuva420p`` VideoFrame in the matrix ``colorspace`` (BT.709 by default), alpha copied as it is.

    FFmpeg's swscale has no fast path from RGB to BT.709 YUV: it took 5-6 ms for a 720p frame here,
    this 2.7 ms (Y' from every pixel, Cb and Cr from the 2 x 2 averages). It agrees with swscale to 1
    level on Y' and 0.1 on average on Cb and Cr (chroma sited at the centre of each 2 x 2 block).
    """
    return planes_frame(rgb_to_yuv420(pixels, colorspace))


# Presets of bgremove's own: x264's preset and the options it changes. ``superfast+mbtree``, the
# default: superfast turns macroblock-tree rate control off, which makes its files about 1.8x veryfast's
# at the same crf; with it back on over 10 frames of look-ahead they are veryfast's size, within 0.2 dB
# PSNR, for 45% less encoding CPU (bench/presets.py on the 720p benchmark clip, README: Video > Speed).
_OWN_PRESETS = {DEFAULT_PRESET: ("superfast", "mbtree=1:rc-lookahead=10")}


# One look-ahead thread: with two (x264's own choice beside two slice threads) the same frames gave
# other pictures from run to run wherever macroblock-tree rate control looks ahead (24 frames of DAVIS
# libby: 9 encodes in 12 with veryfast, 3 with the default); with one, 3 and 4 in 24, and no slower
# (10 s of 720p, --blur 45). x264 is not exact from run to run even in one thread (2 in 39).
_X264_ALWAYS = "lookahead-threads=1"


def _x264_options(config: VideoConfig) -> dict[str, str]:
    preset, changes = _OWN_PRESETS.get(config.preset, (config.preset, ""))
    return {"crf": str(config.crf), "preset": preset, "x264-params": ":".join(filter(None, [changes, _X264_ALWAYS]))}


def _vp9_options(config: VideoConfig) -> dict[str, str]:
    # x264 preset names map onto libvpx speed: the fast ones to realtime speed 8, slow ones to good 1-2.
    speed = {"ultrafast": 8, "superfast": 8, DEFAULT_PRESET: 7, "veryfast": 7, "faster": 6, "fast": 5,
             "medium": 4, "slow": 2, "slower": 1, "veryslow": 0}[config.preset]
    return {
        "crf": str(min(63, config.crf + 10)),  # VP9's scale runs to 63: crf 20 in x264 looks like ~30 here
        "b": "0",
        "deadline": "realtime" if speed >= 7 else "good",
        "cpu-used": str(speed),
        "row-mt": "1",
        "tile-columns": "2",
    }


class _AudioPassage:
    """Copies or re-encodes the input's audio streams into the output, in time with the video.

    Reads from its own demuxer over the input, so the video reader and this never wait on each other;
    ``pump(t)`` moves everything before output time ``t``. Nothing is buffered beyond one packet.
    """

    def __init__(self, path: Path, info: VideoInfo, output: Any, fmt: VideoFormat, start: float,
                 end: float | None) -> None:
        import av

        self._container = _open_input(path)
        self._start, self._end = start, end
        self._origin = info.start_time
        self._routes: dict[int, tuple[Any, Any, Any]] = {}  # input index -> (out stream, decoder?, resampler?)
        self._next_pts: dict[int, int | None] = {}
        inputs = []
        for stream in self._container.streams.audio:
            if stream.codec_context is None:  # a codec this FFmpeg does not know: neither copied nor decoded
                logger.warning("%s: audio stream %d has an unknown codec and is left out", path, stream.index)
                continue
            inputs.append(stream)
            codec = stream.codec_context.name
            if codec in fmt.audio_copy:
                out_stream = output.add_stream_from_template(stream)
                self._routes[stream.index] = (out_stream, None, None)
                logger.debug("audio stream %d (%s): copied", stream.index, codec)
            else:
                rate, layout, sample_format = self._encoder_settings(fmt.audio_encoder, stream)
                out_stream = output.add_stream(fmt.audio_encoder, rate=rate)
                out_stream.layout = layout
                out_stream.format = sample_format
                out_stream.time_base = Fraction(1, rate)
                if fmt.audio_encoder == "aac":
                    out_stream.bit_rate = 96_000 * min(2, max(1, stream.codec_context.channels or 2))
                resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
                self._routes[stream.index] = (out_stream, stream.codec_context, resampler)
                self._next_pts[stream.index] = None
                logger.debug("audio stream %d (%s): re-encoded as %s", stream.index, codec, fmt.audio_encoder)
            with contextlib.suppress(Exception):
                if stream.language:
                    out_stream.metadata["language"] = stream.language
        if inputs and start > 0:  # skip to shortly before --start instead of reading every packet up to it
            with contextlib.suppress(av.error.FFmpegError):
                self._container.seek(max(0, int((start + self._origin) * 1_000_000)), backward=True)
        self._packets = self._container.demux(*inputs) if inputs else iter(())
        self._pending: Any = None
        self._done = not inputs

    @staticmethod
    def _encoder_settings(encoder: str, stream: Any) -> tuple[int, str, str]:
        import av

        channels = stream.codec_context.channels or 2
        layout = "mono" if channels == 1 else "stereo" if channels == 2 or encoder == "libopus" else \
            stream.codec_context.layout.name
        codec = av.codec.Codec(encoder, "w")
        rates = list(codec.audio_rates or [])
        rate = stream.codec_context.sample_rate or 48000
        if rates and rate not in rates:
            rate = 48000
        sample_format = "fltp" if encoder == "aac" else "flt"
        return rate, layout, sample_format

    def _packet_time(self, packet: Any) -> float | None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None or packet.time_base is None:
            return None
        return float(stamp * packet.time_base) - self._origin

    def pump(self, until: float, output: Any) -> None:
        """Write every audio packet that starts before ``until`` seconds of output time."""
        import av

        while not self._done:
            if self._pending is None:
                try:
                    self._pending = next(self._packets)
                except StopIteration:
                    self._done = True
                    break
                except av.error.FFmpegError as error:
                    raise UnsupportedMedia(f"{self._container.name}: corrupt audio ({_reason(error)})") from None
            packet = self._pending
            time = self._packet_time(packet)
            if time is not None and time - self._start > until:
                return
            self._pending = None
            if packet.size == 0 or packet.stream.index not in self._routes:
                continue
            # Without --start, packets before zero stay: they are the encoder's priming (AAC starts at -1024
            # samples, hidden by an edit list) and the first real samples need them.
            before = self._start > 0 and time < self._start - 1e-6 if time is not None else False
            if before or (time is not None and self._end is not None and time >= self._end):
                continue
            self._write(packet, time, output)

    def _write(self, packet: Any, time: float | None, output: Any) -> None:
        import av

        out_stream, decoder, resampler = self._routes[packet.stream.index]
        shift = int(round((self._start + self._origin) / packet.time_base)) if packet.time_base else 0
        if decoder is None:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = out_stream
            output.mux(packet)
            return
        try:
            frames = decoder.decode(packet)
        except av.error.FFmpegError as error:
            logger.warning("skipped an audio packet that does not decode: %s", _reason(error))
            return
        for frame in frames:
            self._encode(packet.stream.index, frame, time, out_stream, resampler, output)

    def _encode(self, index: int, frame: Any, time: float | None, out_stream: Any, resampler: Any,
                output: Any) -> None:
        rate = out_stream.codec_context.sample_rate
        for resampled in resampler.resample(frame):
            next_pts = self._next_pts[index]
            if next_pts is None:  # the first frame sets where the audio starts relative to the video
                next_pts = max(0, round(((time or self._start) - self._start) * rate))
            resampled.pts = next_pts
            resampled.time_base = Fraction(1, rate)
            self._next_pts[index] = next_pts + resampled.samples
            output.mux(out_stream.encode(resampled))

    def finish(self, output: Any) -> None:
        self.pump(math.inf, output)
        for index, (out_stream, decoder, resampler) in self._routes.items():
            if decoder is None:
                continue
            for frame in decoder.decode(None):
                self._encode(index, frame, None, out_stream, resampler, output)
            for resampled in resampler.resample(None):
                next_pts = self._next_pts[index] or 0
                resampled.pts = next_pts
                resampled.time_base = Fraction(1, out_stream.codec_context.sample_rate)
                self._next_pts[index] = next_pts + resampled.samples
                output.mux(out_stream.encode(resampled))
            output.mux(out_stream.encode(None))

    def close(self) -> None:
        self._container.close()


class VideoWriter:
    """Encodes composited frames (display orientation) into one output file; use ``open_video_writer``.

    ``mode`` says what the pixels are: H x W x 3 RGB (opaque), H x W x 4 RGBA (transparent) or H x W
    gray (a matte, written as yuv420p with neutral chroma so every player shows it).
    """

    def __init__(self, temporary: Path, fmt: VideoFormat, info: VideoInfo, mode: CompositeMode,
                 config: VideoConfig, colorspace: int | None = None) -> None:
        import av
        from av.video.reformatter import Colorspace, VideoReformatter

        self.format = fmt
        self.info = info
        self.mode = mode
        self.config = config
        self._alpha = mode is CompositeMode.TRANSPARENT
        # Pixels go back to the stored orientation, under the input's display matrix.
        self._keeps_matrix = info.display_matrix is not None
        self._turns = (info.rotation // 90) % 4 if self._keeps_matrix else 0
        # One swscale context for the file, in one thread: FFmpeg's sliced conversion wrote mid-grey
        # (512 of 1023, alpha too) over the first 8 pixels of a row at a slice boundary, now and then
        # (RGBA -> yuva444p10le at 854 x 480: 28 conversions of one frame in 30); a new context per
        # frame also started and stopped a pool of threads every frame.
        self._reformatter = VideoReformatter()
        # faststart: the index goes before the media (one extra pass at the end) so players and browsers
        # can start before the whole file has arrived.
        options = {"movflags": "+faststart"} if fmt.muxer in ("mp4", "mov") else {}
        self._output = av.open(str(temporary), "w", format=fmt.muxer, options=options)
        self._colorspace = Colorspace.ITU709
        # The matrix of the output's 4:2:0 pictures: BT.709, or the input's own when its planes are
        # passed through (``yuv_passthrough``), which RGB frames are then converted to as well.
        self._matrix = BT709 if colorspace is None else colorspace
        try:
            self._video = self._add_video_stream()
            self._audio = (
                _AudioPassage(info.path, info, self._output, fmt, config.start, config.end)
                if config.audio and info.audio else None
            )
        except BaseException:
            self._output.close()
            raise
        self._last_pts: int | None = None
        self.frames_written = 0

    def _add_video_stream(self) -> Any:
        fmt, info = self.format, self.info
        codec = fmt.alpha_codec if self._alpha else fmt.opaque_codec
        pix_fmt = fmt.alpha_pix_fmt if self._alpha else fmt.opaque_pix_fmt
        assert codec is not None and pix_fmt is not None
        self._codec, self._pix_fmt = codec, pix_fmt
        self._pad = pix_fmt in ("yuv420p", "yuva420p") and codec == "libx264"
        width, height = info.stored_size if self._keeps_matrix else (info.width, info.height)
        if self._pad:
            width, height = width + width % 2, height + height % 2
        stream = self._output.add_stream(codec, rate=info.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt
        stream.time_base = info.time_base
        context = stream.codec_context
        context.time_base = info.time_base
        context.thread_count = decoder_threads()
        context.colorspace = self._matrix if self._pix_fmt in ("yuv420p", "yuva420p") else int(self._colorspace)
        context.color_range = 1  # limited ("tv") range
        context.color_primaries = info.color_primaries
        context.color_trc = info.color_trc
        if codec == "libx264":
            context.options = _x264_options(self.config)
            # slices of each frame in parallel: whole frames in parallel were no faster in the whole
            # pipeline (3.32 against 3.26 s for 10 s of 720p) and held 21 MB more
            context.thread_type = "SLICE"
        elif codec == "libvpx-vp9":
            context.options = _vp9_options(self.config)
        elif codec == "prores_ks":
            context.options = {"profile": "4444", "vendor": "apl0", "alpha_bits": "16"}
        if self._keeps_matrix:
            assert info.display_matrix is not None
            try:
                stream.set_display_matrix(list(info.display_matrix))
            except Exception as error:  # a container that cannot say rotation: keep going without it
                logger.warning("%s: rotation metadata not written: %s", info.path, _reason(error))
        return stream

    def open_encoder(self) -> None:
        """Start the video encoder now rather than at the first frame (x264: some 20 ms), for a
        thread of its own to do while the first frame is still being made."""
        import av

        try:
            if not self._video.codec_context.is_open:
                self._video.codec_context.open()
        except av.error.FFmpegError as error:
            raise OutputError(f"{self.info.path}: cannot start the {self._codec} encoder ({_reason(error)})") from None

    def write(self, pixels: npt.NDArray[np.uint8] | YUVPlanes, frame: Frame) -> None:
        """Encode one output frame (pixels, or planes from ``yuv_passthrough``); its timestamp and
        duration come from the input ``frame``."""
        import av

        if isinstance(pixels, YUVPlanes):
            self._encode(planes_frame(pixels), frame)
            return
        if self._turns:
            pixels = np.rot90(pixels, -self._turns)
        if self._pad:
            pixels = pad_to_even(pixels)
        pixels = np.ascontiguousarray(pixels)
        if pixels.ndim == 3 and self._pix_fmt == ("yuva420p" if pixels.shape[2] == 4 else "yuv420p") \
                and pixels.shape[0] % 2 == 0 and pixels.shape[1] % 2 == 0:
            encoded = yuv420_frame(pixels, self._matrix)
        else:
            if pixels.ndim == 2:
                source = av.VideoFrame.from_ndarray(pixels, format="gray")
            elif pixels.shape[2] == 4:
                source = av.VideoFrame.from_ndarray(pixels, format="rgba")
            else:
                source = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            encoded = self._reformatter.reformat(source, format=self._pix_fmt, dst_colorspace=self._colorspace,
                                                 threads=1)
        self._encode(encoded, frame)

    def _encode(self, encoded: Any, frame: Frame) -> None:
        import av

        time_base = self.info.time_base
        pts = int(round((frame.timestamp - self.config.start) / time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        encoded.pts = pts
        encoded.time_base = time_base
        if frame.duration:
            with contextlib.suppress(AttributeError, TypeError):
                encoded.duration = max(1, int(round(frame.duration / time_base)))
        try:
            self._mux(self._video.encode(encoded))
        except av.error.FFmpegError as error:
            raise OutputError(f"{self.info.path}: encoding failed ({_reason(error)})") from None
        self.frames_written += 1

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            if self._audio is not None and packet.dts is not None:
                self._audio.pump(float(packet.dts * packet.time_base), self._output)
            self._output.mux(packet)

    def finish(self) -> None:
        """Flush the encoders and the rest of the audio; the file is complete after this."""
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.finish(self._output)

    def close(self) -> None:
        if self._audio is not None:
            self._audio.close()
        self._output.close()


@contextlib.contextmanager
def open_video_writer(path: Path, fmt: VideoFormat, info: VideoInfo, mode: CompositeMode,
                      config: VideoConfig, colorspace: int | None = None) -> Iterator[VideoWriter]:
    """A ``VideoWriter`` onto a hidden temporary file beside ``path``, renamed to ``path`` only when the
    block ends without an error (Ctrl-C included) and at least one frame was written."""
    import av

    with atomic_output(path) as temporary:
        try:
            writer = VideoWriter(temporary, fmt, info, mode, config, colorspace)
        except av.error.FFmpegError as error:
            raise OutputError(f"{path}: cannot start the {fmt.name} encoder ({_reason(error)})") from None
        try:
            yield writer
            if writer.frames_written == 0:
                raise OutputError(f"{path}: no frames to write")
            try:
                writer.finish()
            except av.error.FFmpegError as error:
                raise OutputError(f"{path}: cannot finish writing ({_reason(error)})") from None
        finally:
            writer.close()
