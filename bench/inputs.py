"""The benchmark's inputs, made from the shared real material and cached in the work folder.

- ``clip_720p.mp4`` / ``clip_1080p.mp4``: the first 10 s of ``videos_people/pixabay_doctor_26732.mp4``
  (960x540, 29.97 fps) scaled up (bicubic) and encoded once with libx264 ``fast`` crf 18, High profile,
  B-frames, like a camera or phone export; with a stereo AAC 128 kb/s track, the real audio of
  ``videos_people/sam2_person_and_dog.mp4`` looped to the clip's length (the doctor clip has none).
- ``clip_1080p_10min.mp4``: the 1080p clip repeated 60 times by remuxing its packets (no re-encoding,
  so it is made in seconds); each repeat starts on an IDR frame.
- ``photos/``: 40 phone-size (about 12 MP) JPEGs (quality 92, 4:2:0) upscaled (bicubic) from the shared
  person photos: the 4 HD photos and 12 each of the Shen portraits, the Vikram web photos and the CCP
  full-body shots (the largest of each set).
- ``background.jpg``: the 1920x1080 indoor plate, the ``--bg`` picture for videos and photos.

Nothing here is committed: the work folder is git-ignored.
"""

from __future__ import annotations

import math
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

SOURCE_VIDEO = Path("videos_people/pixabay_doctor_26732.mp4")
SOURCE_AUDIO = Path("videos_people/sam2_person_and_dog.mp4")
CLIP_SECONDS = 10.0
LONG_REPEATS = 60  # 60 x 10 s = 10 minutes
PHOTO_PIXELS = 12_000_000
VERSION = "1"  # bump when what is made here changes, so cached inputs are remade


def _log(message: str) -> None:
    print(f"[inputs] {message}", flush=True)


def _fresh(path: Path) -> bool:
    stamp = path.with_name(path.name + ".version")
    return path.exists() and stamp.exists() and stamp.read_text() == VERSION


def _stamp(path: Path) -> None:
    path.with_name(path.name + ".version").write_text(VERSION)


def _audio_samples(data: Path, seconds: float, rate: int = 48000) -> np.ndarray:
    """The source clip's audio as stereo float32 planes (2 x n), looped to ``seconds``."""
    import av

    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    chunks = []
    with av.open(str(data / SOURCE_AUDIO)) as container:
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(resampled.to_ndarray() for resampled in resampler.resample(frame))
        chunks.extend(resampled.to_ndarray() for resampled in resampler.resample(None))
    audio = np.concatenate(chunks, axis=1).astype(np.float32)
    needed = round(seconds * rate)
    repeats = math.ceil(needed / audio.shape[1])
    return np.ascontiguousarray(np.tile(audio, (1, repeats))[:, :needed])


def make_clip(data: Path, target: Path, width: int, height: int, seconds: float = CLIP_SECONDS) -> Path:
    """The doctor clip scaled to ``width`` x ``height``, ``seconds`` long, with an AAC track."""
    import av

    if _fresh(target):
        return target
    _log(f"making {target.name} ({width}x{height}, {seconds:g} s)")
    partial = target.with_name(target.name + ".part")
    with av.open(str(data / SOURCE_VIDEO)) as source, av.open(str(partial), "w", format="mp4") as output:
        source_stream = source.streams.video[0]
        source_stream.thread_type = "AUTO"
        rate = source_stream.average_rate
        time_base = Fraction(1) / Fraction(rate)
        frames = int(round(seconds * rate))
        video = output.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        video.codec_context.options = {"crf": "18", "preset": "fast", "profile": "high"}
        video.codec_context.color_range = 1
        audio = output.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        audio.bit_rate = 128_000
        written = 0
        for frame in source.decode(source_stream):
            if written == frames:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            scaled.pts, scaled.time_base = written, time_base
            output.mux(video.encode(scaled))
            written += 1
        output.mux(video.encode(None))
        samples = _audio_samples(data, written * float(time_base))
        block = 1024
        for start in range(0, samples.shape[1], block):
            chunk = np.ascontiguousarray(samples[:, start : start + block])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))
    partial.replace(target)
    _stamp(target)
    return target


def make_long_clip(clip: Path, target: Path, repeats: int = LONG_REPEATS) -> Path:
    """``clip`` played ``repeats`` times, by copying its packets with shifted timestamps."""
    import av

    if _fresh(target):
        return target
    _log(f"making {target.name} ({repeats} x {clip.name}, remuxed)")
    partial = target.with_name(target.name + ".part")
    with av.open(str(clip)) as source:
        video_in = source.streams.video[0]
        period = float(video_in.frames / video_in.average_rate)  # one pass, in seconds
        with av.open(str(partial), "w", format="mp4") as output:
            streams = {stream.index: output.add_stream_from_template(stream) for stream in source.streams
                       if stream.type in ("video", "audio")}
            last_dts: dict[int, int] = {}  # across passes: a pass's first audio packets overlap the last's end
            for repeat in range(repeats):
                source.seek(0)
                for packet in source.demux(*[source.streams[index] for index in streams]):
                    if packet.dts is None or packet.size == 0:
                        continue
                    shift = round(repeat * period / packet.time_base)
                    time = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
                    if packet.stream.type == "audio" and time >= period:
                        continue  # the audio is a little longer than the picture: keep the passes aligned
                    dts = packet.dts + shift
                    index = packet.stream.index
                    if index in last_dts and dts <= last_dts[index]:
                        continue
                    last_dts[index] = dts
                    packet.dts = dts
                    packet.pts = packet.pts + shift if packet.pts is not None else None
                    packet.stream = streams[index]
                    output.mux(packet)
    partial.replace(target)
    _stamp(target)
    return target


def _photo_sources(data: Path) -> list[Path]:
    def largest(folder: Path, count: int) -> list[Path]:
        files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
        return sorted(files, key=lambda path: (-path.stat().st_size, path.name))[:count]

    return (
        sorted((data / "hd_person_with_clean_plate").glob("*_img.png"))
        + largest(data / "portrait_shen2016" / "images", 12)
        + largest(data / "person_seg_vikram" / "images", 12)
        + largest(data / "fullbody_ccp" / "images", 12)
    )


def make_photos(data: Path, folder: Path, count: int = 40) -> Path:
    """``count`` 12 MP JPEGs upscaled from the shared person photos."""
    import cv2
    from PIL import Image

    if _fresh(folder):
        return folder
    _log(f"making {count} photos of about {PHOTO_PIXELS / 1e6:g} MP in {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = _photo_sources(data)[:count]
    if len(sources) < count:
        raise SystemExit(f"only {len(sources)} source photos found under {data}")
    for number, source in enumerate(sources):
        with Image.open(source) as opened:
            rgb = np.asarray(opened.convert("RGB"))
        height, width = rgb.shape[:2]
        scale = math.sqrt(PHOTO_PIXELS / (width * height))
        size = (2 * round(width * scale / 2), 2 * round(height * scale / 2))
        big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        Image.fromarray(big).save(folder / f"photo_{number:02d}.jpg", quality=92)
    _stamp(folder)
    return folder


def make_background(data: Path, target: Path) -> Path:
    from PIL import Image

    if not target.exists():
        with Image.open(data / "backgrounds" / "sengupta_indoor_0001.png") as opened:
            opened.convert("RGB").save(target, quality=95)
    return target
