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
The three commands run interleaved through ``bench/run.py``'s ``run_case`` (its launcher times wall,
CPU and peak RSS; each output is checked); the ratios to the floor are given run by run. Results: bench/HISTORY.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import inputs  # noqa: E402
import run as bench_run  # noqa: E402


def _model_runner(model_path: Path, input_size: tuple[int, int] | None) -> Any:
    """A function from the model's RGB uint8 input picture (``input_size``, width x height) to its
    foreground probability (h x w float32)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    interpreter.allocate_tensors()
    (source,), (result,) = interpreter.get_input_details(), interpreter.get_output_details()
    height, width = (int(side) for side in source["shape"][1:3])
    if source["dtype"] != np.float32 or result["shape"][-1] != 1 or input_size != (width, height):
        raise SystemExit(f"{model_path}: not a one-class float model of a known input size; "
                         "this experiment covers the selfie models")

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
        self._litert = _model_runner(model_path, self._input_size)
        self._checked = False

    def litert_segment(self: Any, frame: Frame) -> Segmentation:
        ours = self._litert(np.ascontiguousarray(self._model_input(frame)))[None]
        if not self._checked:  # the first frame through MediaPipe as well: the same confidences?
            theirs = segment(self, frame).confidences
            if theirs.shape != ours.shape or float(np.abs(theirs - ours).max()) > 1e-5:
                raise SystemExit("LiteRT's output differs from MediaPipe's; the comparison would not hold")
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
    tool = bench_run.Tool
    case = bench_run.Case("litert", "video", f"{arguments.height}p `{' '.join(options)}`",
                          units=bench_run.video_frames(clip))
    case.tools = [
        tool("bgremove", [*bench_run.bgremove_command(), str(clip), *options, "-o", str(out / "mediapipe"), "-q"],
             out / "mediapipe"),
        tool("litert", [sys.executable, str(Path(__file__).resolve()), "--as-cli", str(clip), *options,
                        "-o", str(out / "litert"), "-q"], out / "litert"),
        tool("floor", [sys.executable, str(BENCH / "floor.py"), "video", str(clip), str(out / "floor.mp4")],
             out / "floor.mp4"),
    ]
    bench_run.run_case(case, arguments.runs, bench_run.environment())  # interleaved, outputs checked
    floor = case.tools[-1]
    print(f"{case.description}, {arguments.runs} interleaved runs, medians:")
    print("| command | wall s | CPU s | peak RSS MB | over the floor, run by run (median, min-max) |")
    print("|---|---|---|---|---|")
    for each in case.tools:
        shown = "" if each is floor else bench_run.run_by_run(each, floor)
        print(f"| {each.name} | {each.median():.2f} | {each.median('cpu'):.2f} | {each.median('rss_mb'):.0f} | "
              f"{shown} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as-cli":
        del sys.argv[1]
        as_cli()
    else:
        main()
