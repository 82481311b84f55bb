"""Flicker and IoU of video mattes with and without temporal smoothing, on the shared real clips.

    python bench/flicker.py                      # DAVIS dance-twirl + the people clips, 8 s each
    python bench/flicker.py --smooth 0 1 2 3     # more settings
    python bench/flicker.py --seconds 4 --model selfie-landscape
    python bench/flicker.py --smooth 3 --every 1 2 3   # the model on every Nth frame (--segment-every)

Flicker is the mean absolute change of alpha (0..1, at frame resolution) between consecutive frames;
it counts real motion too, so the DAVIS row also shows the ground-truth masks' own change. Jitter is
the mean absolute second difference, |a[t] - (a[t-1] + a[t+1]) / 2|: back-and-forth change that
smooth motion does not cause. IoU is per frame against the DAVIS masks (alpha >= 0.5), averaged;
"image" is the same model run on every frame as a single image. With ``--every`` N > 1 the model
runs on every Nth frame only; *vs every* then compares those mattes with the same smoothing run on
every frame (mean absolute difference of alpha, and the IoU of the alpha >= 0.5 masks), which also
works for the clips without ground truth. Data: ../shared/data or $BGREMOVE_DATA_DIR; models:
$BGREMOVE_MODEL_DIR or the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgremove import temporal  # noqa: E402
from bgremove.config import MaskConfig, SegmenterConfig  # noqa: E402
from bgremove.pipeline import Pipeline  # noqa: E402
from bgremove.video import VideoReader  # noqa: E402

DATA = Path(os.environ.get("BGREMOVE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


class Stats:
    """Streaming flicker and jitter: keeps the last two mattes only."""

    def __init__(self) -> None:
        self.changes: list[float] = []
        self.jitters: list[float] = []
        self._previous: list[np.ndarray] = []

    def add(self, alpha: np.ndarray) -> None:
        if self._previous:
            self.changes.append(float(np.abs(alpha - self._previous[-1]).mean()))
        if len(self._previous) == 2:
            self.jitters.append(float(np.abs(self._previous[-1] - (self._previous[0] + alpha) / 2).mean()))
        self._previous = (self._previous + [alpha])[-2:]

    @property
    def flicker(self) -> float:
        return float(np.mean(self.changes)) if self.changes else float("nan")

    @property
    def jitter(self) -> float:
        return float(np.mean(self.jitters)) if self.jitters else float("nan")


def iou(alpha: np.ndarray, mask: np.ndarray) -> float:
    predicted = alpha >= 0.5
    union = np.logical_or(predicted, mask).sum()
    return float(np.logical_and(predicted, mask).sum() / union) if union else 1.0


def load_masks(folder: Path) -> list[np.ndarray] | None:
    import cv2

    paths = sorted(folder.glob("*.png"))
    return [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127 for path in paths] if paths else None


def run(clip: Path, model: str, smooth: int | None, seconds: float, masks: list[np.ndarray] | None,
        every: int = 1) -> dict:
    """smooth None: image mode (every frame on its own)."""
    import cv2

    stats, ious = Stats(), []
    mattes: list[np.ndarray] = []  # a quarter of the size each way, for comparing runs
    started = time.perf_counter()
    count = 0
    pipeline = Pipeline(SegmenterConfig(model=model), MaskConfig(smooth=smooth or 0, segment_every=every))
    with pipeline, VideoReader(clip) as reader:
        frames = reader.frames(0.0, seconds)
        if smooth is None:
            pairs = ((frame, pipeline.alpha(frame)) for frame in frames)
            session = None
        else:
            session = pipeline.video_session()
            pairs = session.mattes(frames)
        passes = None
        try:
            for frame, alpha in pairs:
                stats.add(alpha)
                mattes.append(cv2.resize(alpha, (alpha.shape[1] // 4, alpha.shape[0] // 4),
                                         interpolation=cv2.INTER_AREA))
                if masks is not None and frame.index < len(masks):
                    ious.append(iou(alpha, masks[frame.index]))
                count += 1
        finally:
            if session is not None:
                passes = session.passes
                session.close()
    return {
        "flicker": stats.flicker,
        "jitter": stats.jitter,
        "iou": float(np.mean(ious)) if ious else None,
        "frames": count,
        "passes": count if passes is None else passes,
        "fps": count / (time.perf_counter() - started),
        "mattes": mattes,
    }


def agreement(mattes: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """Mean absolute difference of alpha, and mean IoU of the alpha >= 0.5 masks, frame by frame."""
    differences = [float(np.abs(a - b).mean()) for a, b in zip(mattes, reference, strict=True)]
    overlaps = [iou(a, b >= 0.5) for a, b in zip(mattes, reference, strict=True)]
    return float(np.mean(differences)), float(np.mean(overlaps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="selfie")
    parser.add_argument("--smooth", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--every", type=int, nargs="+", default=[1],
                        help="model strides to run with each smoothing setting (1 = every frame)")
    parser.add_argument("--agreement", type=float, default=None,
                        help="soft IoU of two passes above which the frames between are skipped "
                             "(default: bgremove's, temporal.AGREEMENT)")
    parser.add_argument("--seconds", type=float, default=8.0, help="at most this much of each clip")
    parser.add_argument("--clips", nargs="*", help="clip files (default: dance-twirl and videos_people)")
    arguments = parser.parse_args()
    if arguments.agreement is not None:
        temporal.AGREEMENT = arguments.agreement

    if arguments.clips:
        clips = [(Path(path), None) for path in arguments.clips]
    else:
        davis = DATA / "video_davis2016"
        clips = [(davis / "videos" / "dance-twirl.mp4", davis / "dance-twirl" / "masks")]
        people = DATA / "videos_people"
        clips += [(path, None) for path in sorted(people.glob("*")) if path.suffix in (".mp4", ".mkv", ".avi")]

    settings: list[tuple[int | None, int]] = [(None, 1)] + [
        (smooth, every) for smooth in arguments.smooth for every in arguments.every if every <= smooth + 1]
    header = (f"{'clip':38s} {'setting':16s} {'frames':>6s} {'passes':>6s} {'flicker':>8s} {'jitter':>8s} {'IoU':>7s} "
              f"{'fps':>6s} {'vs every: diff':>14s} {'IoU':>7s}")
    print(header)
    print("-" * len(header))
    for clip, mask_folder in clips:
        if not clip.is_file():
            print(f"{clip.name:38s} missing: {clip}")
            continue
        masks = load_masks(mask_folder) if mask_folder is not None else None
        if masks is not None:
            truth = Stats()
            for mask in masks[: int(arguments.seconds * 24) + 1]:
                truth.add(mask.astype(np.float32))
            print(f"{clip.stem[:38]:38s} {'truth':16s} {len(masks):6d} {'':6s} {truth.flicker:8.4f} "
                  f"{truth.jitter:8.4f}")
        every_frame: dict[int | None, list[np.ndarray]] = {}
        for smooth, every in settings:
            if smooth is None and masks is None:
                continue  # image mode only matters where there is an IoU to compare
            if every > 1 and smooth not in every_frame:
                every_frame[smooth] = run(clip, arguments.model, smooth, arguments.seconds, masks)["mattes"]
            result = run(clip, arguments.model, smooth, arguments.seconds, masks, every)
            if every == 1:
                every_frame[smooth] = result["mattes"]
            name = "image" if smooth is None else f"smooth={smooth}" + (f" every={every}" if every > 1 else "")
            score = f"{result['iou']:7.4f}" if result["iou"] is not None else f"{'-':>7s}"
            versus = ""
            if every > 1:
                difference, overlap = agreement(result["mattes"], every_frame[smooth])
                versus = f" {difference:14.4f} {overlap:7.4f}"
            print(f"{clip.stem[:38]:38s} {name:16s} {result['frames']:6d} {result['passes']:6d} "
                  f"{result['flicker']:8.4f} {result['jitter']:8.4f} {score} {result['fps']:6.1f}{versus}", flush=True)


if __name__ == "__main__":
    main()
