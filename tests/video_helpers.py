"""Make small test videos with PyAV and read outputs back: streams, frames, timestamps, alpha."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


def moving_frames(picture: np.ndarray, count: int, width: int, height: int, step: int = 2) -> list[np.ndarray]:
    """``count`` frames of ``width`` x ``height`` cut from ``picture`` by a window moving ``step`` px a frame."""
    import cv2

    scale = max((width + step * count) / picture.shape[1], height / picture.shape[0])
    big = cv2.resize(picture, (int(np.ceil(picture.shape[1] * scale)), int(np.ceil(picture.shape[0] * scale))))
    return [np.ascontiguousarray(big[:height, index * step : index * step + width]) for index in range(count)]


def write_clip(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 24,
    timestamps: Sequence[float] | None = None,
    audio_seconds: float | None = None,
    audio_codecs: Sequence[str] = ("aac",),
    rotation: int | None = None,
    codec: str = "libx264",
    container_format: str | None = None,
) -> Path:
    """Write RGB frames as a video; ``timestamps`` (seconds) make it variable-frame-rate; ``audio_seconds``
    adds a 440 Hz stereo sine track; ``rotation`` sets the display matrix (counter-clockwise degrees)."""
    import av

    time_base = Fraction(1, 1000) if timestamps is not None else Fraction(1, fps)
    with av.open(str(path), "w", format=container_format) as output:
        frames = list(frames)
        height, width = frames[0].shape[:2]
        video = output.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if codec == "libx264":
            video.codec_context.options = {"crf": "18", "preset": "ultrafast"}
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio_streams = []
        if audio_seconds is not None:
            for audio_codec in audio_codecs:
                audio = output.add_stream(audio_codec, rate=48000)
                audio.layout = "stereo"
                audio_streams.append(audio)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = round(timestamps[index] / time_base) if timestamps is not None else index
            frame.time_base = time_base
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        for audio in audio_streams:
            rate, done, block = 48000, 0, 960
            total = round((audio_seconds or 0) * rate)
            while done < total:
                count = min(block, total - done)
                wave = np.sin(2 * np.pi * 440 * (np.arange(done, done + count) / rate)).astype(np.float32) * 0.3
                samples = np.stack([wave, wave])
                sample_format = "fltp" if audio.codec_context.name == "aac" else "flt"
                if sample_format == "flt":
                    samples = samples.T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=sample_format, layout="stereo")
                frame.sample_rate = rate
                frame.pts = done
                frame.time_base = Fraction(1, rate)
                output.mux(audio.encode(frame))
                done += count
            output.mux(audio.encode(None))
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC-in-MP4 file with no video stream."""
    import av

    with av.open(str(path), "w", format="mp4") as output:
        audio = output.add_stream("aac", rate=48000)
        audio.layout = "mono"
        total, done = round(seconds * 48000), 0
        while done < total:
            wave = np.sin(2 * np.pi * 440 * np.arange(done, done + 1024) / 48000).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, done, Fraction(1, 48000)
            output.mux(audio.encode(frame))
            done += 1024
        output.mux(audio.encode(None))
    return path


@dataclass
class StreamFacts:
    type: str
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    rate: Fraction | None
    duration: float | None  # seconds, from the packets
    packets: int
    rotation: float


@dataclass
class MediaFacts:
    streams: list[StreamFacts]
    container: str

    def of(self, kind: str) -> list[StreamFacts]:
        return [stream for stream in self.streams if stream.type == kind]


def inspect(path: Path) -> MediaFacts:
    """Streams of a file with durations measured from their packets (zero or the first pts, to the last
    pts + its duration), and the rotation of the first video frame."""
    import av

    from bgremove.video import matrix_rotation

    with av.open(str(path)) as container:
        streams = list(container.streams)
        spans: dict[int, list[float]] = {stream.index: [] for stream in streams}
        counts = dict.fromkeys(spans, 0)
        for packet in container.demux(*streams):
            if packet.size == 0 or packet.pts is None:
                continue
            counts[packet.stream.index] += 1
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            span = spans[packet.stream.index]
            spans[packet.stream.index] = [min(span[0], start), max(span[1], end)] if span else [start, end]
        facts = []
        for stream in streams:
            context = stream.codec_context
            matrix = None
            if stream.type == "video":
                container.seek(0)
                for frame in container.decode(stream):
                    from bgremove.video import _display_matrix

                    matrix = _display_matrix(frame)
                    break
            span = spans[stream.index]
            facts.append(StreamFacts(
                type=stream.type,
                codec=context.name if context is not None else "",
                pix_fmt=context.pix_fmt if stream.type == "video" else None,
                width=context.width if stream.type == "video" else 0,
                height=context.height if stream.type == "video" else 0,
                rate=stream.average_rate if stream.type == "video" else None,
                # from zero: what comes before is encoder priming (AAC's -1024 samples) that edit lists hide
                duration=(span[1] - max(span[0], 0.0)) if span else None,
                packets=counts[stream.index],
                rotation=matrix_rotation(matrix),
            ))
        return MediaFacts(facts, container.format.name)


def decode_frames(
    path: Path, *, fmt: str = "rgb24", alpha_decoder: bool = False
) -> tuple[list[np.ndarray], list[float], str]:
    """Every frame of the first video stream (stored orientation), its timestamp in seconds, and the
    decoded pixel format.

    ``alpha_decoder`` decodes VP9 with ``libvpx-vp9``: FFmpeg's own ``vp9`` decoder ignores the alpha
    that WebM carries beside the picture.
    """
    import av

    pictures, times, pix_fmt = [], [], ""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r") if alpha_decoder else stream.codec_context
        for packet in container.demux(stream):
            for frame in decoder.decode(packet if packet.size else None):
                pictures.append(frame.to_ndarray(format=fmt))
                times.append(float(frame.pts * stream.time_base) if frame.pts is not None else float("nan"))
                pix_fmt = frame.format.name
    return pictures, times, pix_fmt


def write_flash_and_click(path: Path, *, seconds: float = 3.0, at: float = 2.0, fps: int = 24) -> Path:
    """Dark frames with one white frame at ``at`` seconds and silence with a 1 kHz click at the same time:
    an A/V sync test pattern (H.264 + AAC in MP4)."""
    import av

    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        audio = output.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for index in range(round(seconds * fps)):
            picture = np.full((96, 128, 3), 255 if index == round(at * fps) else 20, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        done = 0
        while done < seconds * 48000:
            times = np.arange(done, done + 1024) / 48000
            wave = np.where((times >= at) & (times < at + 0.02), np.sin(2 * np.pi * 1000 * times), 0.0)
            frame = av.AudioFrame.from_ndarray(wave.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, done, Fraction(1, 48000)
            output.mux(audio.encode(frame))
            done += 1024
        output.mux(audio.encode(None))
    return path


def flash_and_click_times(path: Path) -> tuple[float | None, float | None]:
    """When the bright frame shows and when the click sounds, in seconds, as a player would decode them."""
    import av

    flash = click = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.to_ndarray(format="gray").mean() > 100:
                flash = float(frame.pts * frame.time_base)
                break
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.nonzero(np.abs(frame.to_ndarray()[0]) > 0.3)[0]
            if len(loud):
                click = float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
                break
    return flash, click
