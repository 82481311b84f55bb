"""x264 presets at bgremove's default crf: encoding CPU time, file size and quality, on one clip.

superfast+mbtree is bgremove's default (x264's superfast with macroblock-tree rate control on, over
10 frames of look-ahead); any preset may carry x264 options after a +, e.g. veryfast+subme=1.

    python bench/presets.py                          # the bench's 720p clip, crf 20
    python bench/presets.py CLIP.mp4 --crf 18 20 22 --presets ultrafast superfast veryfast faster

The clip is decoded once into memory (yuv420p), then encoded with each preset (libx264, threads as
bgremove uses them); CPU seconds are those of the encoding alone (the process's user + system time
across its threads). Quality is the PSNR of Y' against the decoded source frames, and SSIM of Y' on
every 10th frame (scikit-image). Lower CPU is faster; a higher PSNR/SSIM is closer to the source.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    import av

    from bgremove.video import _OWN_PRESETS, _X264_ALWAYS, decoder_threads

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, nargs="?", default=BENCH / "_work" / "clip_720p.mp4")
    parser.add_argument("--crf", type=int, nargs="+", default=[20],
                        help="one or more crf values; each preset is encoded at each")
    parser.add_argument("--presets", nargs="+",
                        default=["ultrafast", "superfast", "superfast+mbtree", "veryfast", "faster", "fast"],
                        help="x264 presets, each optionally with x264 options: veryfast+me=dia:subme=1")
    parser.add_argument("--thread-type", choices=["SLICE", "FRAME", "both"], default="SLICE",
                        help="x264's threading: slices of each frame (what bgremove uses), whole frames, or both")
    arguments = parser.parse_args()

    with av.open(str(arguments.clip)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = [frame.to_ndarray() for frame in container.decode(stream)]  # yuv420p planes, stacked
    height = frames[0].shape[0] * 2 // 3
    width = frames[0].shape[1]
    print(f"{arguments.clip.name}: {len(frames)} frames {width}x{height}, crf {' '.join(map(str, arguments.crf))}, "
          f"{decoder_threads()} threads")
    print("| preset | crf | threads | encode CPU s | encode wall s | size MB | kbit/s | PSNR Y dB | SSIM Y |")
    print("|---|---|---|---|---|---|---|---|---|")
    from skimage.metrics import structural_similarity

    thread_types = ["SLICE", "FRAME"] if arguments.thread_type == "both" else [arguments.thread_type]
    for preset, crf, thread_type in [(preset, crf, thread_type) for preset in arguments.presets
                                     for crf in arguments.crf for thread_type in thread_types]:
        buffer = io.BytesIO()
        started, cpu = time.perf_counter(), cpu_seconds()
        with av.open(buffer, "w", format="mp4") as output:
            encoder = output.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = encoder.codec_context.time_base = Fraction(1) / Fraction(rate)
            encoder.codec_context.thread_count = decoder_threads()
            encoder.codec_context.thread_type = thread_type
            # bgremove's own (superfast+mbtree), or an x264 preset with options on top: veryfast+me=dia:subme=1
            name, params = _OWN_PRESETS.get(preset) or (preset.partition("+")[0], preset.partition("+")[2])
            encoder.codec_context.options = {"crf": str(crf), "preset": name,
                                             "x264-params": ":".join(filter(None, [params, _X264_ALWAYS]))}
            for index, planes in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts = index
                output.mux(encoder.encode(frame))
            output.mux(encoder.encode(None))
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        size = buffer.tell()
        buffer.seek(0)
        errors, ssims = [], []
        with av.open(buffer) as decoded:
            for index, frame in enumerate(decoded.decode(video=0)):
                original = frames[index][:height].astype(np.float64)
                luma = frame.to_ndarray()[:height].astype(np.float64)
                errors.append(np.mean((original - luma) ** 2))
                if index % 10 == 0:
                    ssims.append(structural_similarity(original, luma, data_range=255))
        psnr = 10 * np.log10(255**2 / max(np.mean(errors), 1e-12))
        seconds = len(frames) / float(rate)
        print(f"| {preset} | {crf} | {thread_type.lower()} | {cpu:.2f} | {wall:.2f} | {size / 1e6:.2f} | "
              f"{size * 8 / seconds / 1000:.0f} | "
              f"{psnr:.2f} | {np.mean(ssims):.4f} |", flush=True)


if __name__ == "__main__":
    main()
