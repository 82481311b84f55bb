"""What MediaPipe's graph costs around the selfie model: bgremove as it is, against bgremove with the
same ``.tflite`` model run by LiteRT's interpreter directly, and the floor (an experiment, not a backend).

    pip install ai-edge-litert                   # not one of bgremove's dependencies
    python bench/litert.py                       # 720p --blur 45, 6 interleaved runs
    python bench/litert.py --runs 9 --option=--bg --option=bench/_work/background.jpg

bgremove runs the selfie models through MediaPipe Tasks' ``ImageSegmenter``, as its brief asks. The
model itself is one TFLite graph with a float [0, 1] RGB input and the foreground probability out, so
an interpreter can run it with no graph around it. ``--as-cli`` makes this script the ``bgremove``
command with ``MediaPipeSegmenter.segment`` running the model that way (one XNNPACK thread), after it
has checked on the first frame that both give the same confidences: every other step is bgremove's own.
The three commands run interleaved, timed by ``bench/run.py``'s launcher (wall, CPU, peak RSS); the
ratios to the floor are given run by run, as ``bench/run.py`` gives them. Results: bench/HISTORY.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import inputs  # noqa: E402
import run as bench_run  # noqa: E402


def _model_runner(model_path: Path) -> Any:
    """A function from the model's RGB uint8 input picture to its foreground probability (h x w float32)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    interpreter.allocate_tensors()
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    if source["dtype"] != np.float32 or result["shape"][-1] != 1:
        raise SystemExit(f"{model_path}: not a one-class float model; this experiment covers the selfie models")

    def probability(pixels: Any) -> Any:
        interpreter.set_tensor(source["index"], (pixels.astype(np.float32) * (1 / 255.0))[None])
        interpreter.invoke()
        return interpreter.get_tensor(result["index"])[0, ..., 0].copy()

    return probability


def as_cli() -> None:
    """``bgremove`` with the model's passes made by LiteRT instead of MediaPipe's graph."""
    import numpy as np

    from bgremove.cli import run
    from bgremove.segmenters import mediapipe_tasks
    from bgremove.types import Frame, Segmentation

    cls = mediapipe_tasks.MediaPipeSegmenter
    opened, segment = cls.__init__, cls.segment

    def init(self: Any, model_path: Path, *arguments: Any, **options: Any) -> None:
        opened(self, model_path, *arguments, **options)
        self._litert = _model_runner(model_path)
        self._model_path = model_path
        self._checked = False

    def litert_segment(self: Any, frame: Frame) -> Segmentation:
        pixels = np.ascontiguousarray(self._model_input(frame))
        ours = self._litert(pixels)[None]
        if not self._checked:  # the first frame through MediaPipe as well: the same confidences?
            theirs = segment(self, frame).confidences
            if theirs.shape != ours.shape or float(np.abs(theirs - ours).max()) > 1e-5:
                raise SystemExit(f"{self._model_path}: LiteRT's output differs from MediaPipe's; "
                                 "the comparison would not hold")
            self._checked = True
        return Segmentation(confidences=ours, labels=self.labels)

    cls.__init__, cls.segment = init, litert_segment
    sys.argv[0] = "bgremove"
    run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--height", type=int, choices=(720, 1080), default=720)
    parser.add_argument("--option", action="append", default=None,
                        help="bgremove's options, one per --option (default: --blur 45)")
    parser.add_argument("--data", type=Path, default=bench_run.DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=BENCH / "_work")
    arguments = parser.parse_args()
    options = arguments.option or ["--blur", "45"]
    width = {720: 1280, 1080: 1920}[arguments.height]
    arguments.work.mkdir(parents=True, exist_ok=True)
    clip = inputs.make_clip(arguments.data, arguments.work / f"clip_{arguments.height}p.mp4", width,
                            arguments.height)
    out = arguments.work / "out" / "litert"
    tools = {
        "bgremove": [*bench_run.bgremove_command(), str(clip), *options, "-o", str(out / "mediapipe"), "-q"],
        "litert": [sys.executable, str(Path(__file__).resolve()), "--as-cli", str(clip), *options,
                   "-o", str(out / "litert"), "-q"],
        "floor": [sys.executable, str(BENCH / "floor.py"), "video", str(clip), str(out / "floor.mp4")],
    }
    env = bench_run.environment()
    samples: dict[str, list[bench_run.Sample]] = {name: [] for name in tools}
    for number in range(arguments.runs):
        for name, command in tools.items():
            for path in (out / "mediapipe", out / "litert", out / "floor.mp4"):
                bench_run.clean(path)
            sample = bench_run.measure(command, env)
            samples[name].append(sample)
            print(f"  {name:10s} run {number + 1}: {sample.seconds:6.2f} s  cpu {sample.cpu:6.2f} s  "
                  f"rss {sample.rss_mb:5.0f} MB", file=sys.stderr, flush=True)
    floor = [sample.seconds for sample in samples["floor"]]
    print(f"{arguments.height}p `{' '.join(options)}`, {arguments.runs} interleaved runs, medians:")
    print("| command | wall s | CPU s | peak RSS MB | over the floor, run by run (median, min-max) |")
    print("|---|---|---|---|---|")
    for name, taken in samples.items():
        ratios = sorted(sample.seconds / base for sample, base in zip(taken, floor, strict=True))
        shown = "" if name == "floor" else f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        print(f"| {name} | {statistics.median(s.seconds for s in taken):.2f} | "
              f"{statistics.median(s.cpu for s in taken):.2f} | {statistics.median(s.rss_mb for s in taken):.0f} | "
              f"{shown} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as-cli":
        del sys.argv[1]
        as_cli()
    else:
        main()
