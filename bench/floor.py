"""The floor: decode and encode with bgremove's default output settings, no segmentation at all.

    python bench/floor.py video IN.mp4 OUT.mp4     # libx264, bgremove's default preset and crf, yuv420p
    python bench/floor.py video IN.mp4 OUT.webm    # libvpx-vp9 yuva420p, bgremove's VP9 options
    python bench/floor.py images IN_DIR OUT_DIR --format PNG|JPEG

Video: PyAV decodes the input (frame threads, as bgremove's reader) and hands the decoded yuv420p
frames straight to the encoder (no RGB conversion: this is the cost of the codec work alone), with the
encoder, options, thread count and ``+faststart`` bgremove's writer uses; audio goes through
bgremove's own audio passage (copied into MP4, re-encoded to Opus for WebM), so it is the same work.
Images: bgremove's ``read_image`` (OpenCV for complete JPEGs, else Pillow; EXIF applied) and
``write_image`` with the same format and options bgremove uses (its own PNG writer with an opaque alpha
channel, or JPEG quality 95, 4:4:4), one photo at a time in one thread, without the CLI's malloc
settings (``bgremove/allocator.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def video(source: Path, target: Path) -> None:
    import av

    from bgremove.config import VideoConfig
    from bgremove.video import (
        VIDEO_FORMATS,
        _AudioPassage,
        _vp9_options,
        _x264_options,
        decoder_threads,
        probe_video,
    )

    config = VideoConfig()
    fmt = VIDEO_FORMATS["webm" if target.suffix == ".webm" else "mp4"]
    alpha = fmt.name == "webm"
    codec = fmt.alpha_codec if alpha else fmt.opaque_codec
    pix_fmt = fmt.alpha_pix_fmt if alpha else fmt.opaque_pix_fmt
    info = probe_video(source)
    options = {"movflags": "+faststart"} if fmt.muxer in ("mp4", "mov") else {}
    frames = 0
    with av.open(str(source)) as container, av.open(str(target), "w", format=fmt.muxer, options=options) as output:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decoder_threads()
        encoder = output.add_stream(codec, rate=info.fps)
        encoder.width, encoder.height, encoder.pix_fmt = info.width, info.height, pix_fmt
        encoder.time_base = encoder.codec_context.time_base = info.time_base
        encoder.codec_context.thread_count = decoder_threads()
        encoder.codec_context.options = _vp9_options(config) if alpha else _x264_options(config)
        audio = _AudioPassage(source, info, output, fmt, 0.0, None) if info.audio else None

        def mux(packets: list) -> None:
            for packet in packets:
                if audio is not None and packet.dts is not None:
                    audio.pump(float(packet.dts * packet.time_base), output)
                output.mux(packet)

        for frame in container.decode(stream):
            if frame.format.name != pix_fmt:
                frame = frame.reformat(format=pix_fmt)
            frame.pict_type = av.video.frame.PictureType.NONE
            mux(encoder.encode(frame))
            frames += 1
        mux(encoder.encode(None))
        if audio is not None:
            audio.finish(output)
            audio.close()
    print(f"floor: {frames} frames", file=sys.stderr)


def images(source: Path, target: Path, fmt: str) -> None:
    import numpy as np

    from bgremove.media import read_image, write_image

    target.mkdir(parents=True, exist_ok=True)
    extension = ".png" if fmt == "PNG" else ".jpg"
    count = 0
    for path in sorted(source.glob("*.jpg")):
        frame, info = read_image(path)
        pixels = frame.rgb
        if fmt == "PNG":
            pixels = np.dstack([pixels, np.full(pixels.shape[:2], 255, dtype=np.uint8)])
        write_image(target / f"{path.stem}_nobg{extension}", pixels, fmt, subsampling=info.subsampling)
        count += 1
    print(f"floor: {count} images", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["video", "images"])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--format", choices=["PNG", "JPEG"], default="PNG")
    arguments = parser.parse_args()
    if arguments.kind == "video":
        video(arguments.input, arguments.output)
    else:
        images(arguments.input, arguments.output, arguments.format)


if __name__ == "__main__":
    main()
