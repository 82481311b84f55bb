"""Temporal smoothing of video mattes: a short window of past *and* future frames, reset at scene cuts.

A batch tool can look ahead, so the smoother centres its window on the frame it outputs: it waits for
``radius`` later frames, then averages the frame's foreground probability with ``radius`` frames on each
side. Centred, it has none of the lag of a moving average over past frames only. The weights are a
Gaussian in time (sigma = radius / 2) times each frame's own confidence at each pixel,
``(|2p - 1| + 0.2) ** 2``: where one frame is unsure (p near 0.5) and its neighbours are sure, the
neighbours decide, which is what flicker is. A scene cut (the picture changes far more than it did in
the frames before) starts a new window, so nothing is averaged across it.

Measured on the DAVIS ``dance-twirl`` clip with the selfie model (``bench/flicker.py``), radius 2 cut the
mean frame-to-frame change of alpha by about half and raised per-frame IoU slightly; a plain Gaussian,
a box, a 3-frame median and a motion-guided variant each did worse on flicker, on error near the
subject, or both. The numbers are in README.md (Video, Quality). With the refined matte (refine.py) radius 2
cut it by 44% and radius 3 by 56% against the raw model, per-frame IoU +8.5 points either way, so the
default is 3 (``bench/eval.py --sets davis``; README.md, Quality).

With ``stride`` N > 1 the smoother may skip the model on frames between two passes N frames apart:
``push`` then takes a *probe* (a function that makes the probability) instead of the probability,
runs it at once on every Nth frame of a scene (its first frame always) and, for the frames between,
only once the passes on both sides are known: where those two agree (soft IoU of at least
``AGREEMENT``), the frames between are given the same weighted average of their neighbours as any
frame (the centre frame's own weight is a quarter of the window's at radius 3), and their probes are
never run; where they disagree (fast motion), each is run after all. ``bench/flicker.py --every``
measures what that costs and saves (README, Video).

Smoothing runs on the model-resolution probability (e.g. 256 x 256), before resizing, thresholding and
feathering, so it costs little and a hard ``--threshold`` matte flickers less too. It holds at most
``2 * radius + stride`` frames: memory does not grow with the video's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from .types import Alpha, RGBImage

Item = TypeVar("Item")

CONFIDENCE_FLOOR = 0.2
CONFIDENCE_POWER = 2.0
# A cut: the mean absolute change of a 32 x 32 gray thumbnail (0-255) is above this and above
# CUT_RATIO times its recent average. Consecutive frames of real clips, fast camera moves included, stay
# under 13; unrelated shots differ by 23 and more.
CUT_MIN_CHANGE = 15.0
CUT_RATIO = 3.0
_THUMBNAIL = (32, 32)
# Frames between two model passes are left to the smoother when the passes' soft IoU (sum of the
# smaller probability over sum of the larger, per pixel) is at least this: the subject has hardly moved.
AGREEMENT = 0.95

Probe = Callable[[], Alpha]


def thumbnail(picture: RGBImage | npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """A 32 x 32 gray float32 picture (0-255) of the frame, for cut detection: from RGB (H x W x 3), or
    from a video's own limited-range luma plane (H x W, Y' 16-235), which is that gray up to its range."""
    from .segmenters import shrink_for_model

    small = shrink_for_model(picture, *_THUMBNAIL)  # area averages, without OpenCV's slow fractional path
    if small.ndim == 2:
        return np.asarray((small.astype(np.float32) - 16.0) * np.float32(255 / 219), dtype=np.float32)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), dtype=np.float32)


class CutDetector:
    """Says whether each new frame starts a new scene, from the change of a small gray thumbnail."""

    def __init__(self, min_change: float = CUT_MIN_CHANGE, ratio: float = CUT_RATIO, memory: int = 8) -> None:
        self.min_change = min_change
        self.ratio = ratio
        self._previous: npt.NDArray[np.float32] | None = None
        self._recent: deque[float] = deque(maxlen=memory)

    def is_cut(self, picture: RGBImage | npt.NDArray[np.uint8]) -> bool:
        """Whether ``picture`` (RGB, or limited-range luma: see ``thumbnail``) starts a new scene."""
        current = thumbnail(picture)
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return previous is not None
        change = float(np.abs(current - previous).mean())
        usual = float(np.mean(self._recent)) if self._recent else 0.0
        cut = change > self.min_change and change > self.ratio * usual
        if cut:
            self._recent.clear()
        else:
            self._recent.append(change)
        return cut


@dataclass
class _Entry(Generic[Item]):
    item: Item | None  # None once handed out: the past is kept for its probabilities only
    weighted: Alpha | None  # confidence * probability; None for a frame whose model pass was skipped
    confidence: Alpha | None
    scene: int
    probe: Probe | None = None  # a frame between passes: its model pass, until the passes around it decide

    def measure(self, probability: Alpha) -> None:
        probability = np.asarray(probability, dtype=np.float32)
        self.confidence = (np.abs(2.0 * probability - 1.0) + CONFIDENCE_FLOOR) ** CONFIDENCE_POWER
        self.weighted = self.confidence * probability
        self.probe = None


def agreement(first: Alpha, second: Alpha) -> float:
    """Soft IoU of two probabilities: 1 for identical ones (or two empty ones), 0 for disjoint ones."""
    union = float(np.maximum(first, second).sum())
    return float(np.minimum(first, second).sum()) / union if union > 1e-3 else 1.0


def temporal_weights(radius: int) -> npt.NDArray[np.float64]:
    """Gaussian weights for offsets -radius..radius, sigma = radius / 2."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    sigma = max(radius / 2.0, 0.5)
    return np.exp(-0.5 * (offsets / sigma) ** 2)


class TemporalSmoother(Generic[Item]):
    """Streams (item, probability) pairs through a centred, confidence-weighted window of frames.

    ``push`` takes one frame's item (anything: the pipeline passes the Frame), its foreground
    probability (h x w float32 in [0, 1], the same size for every frame) or a probe that makes it
    (see the module's docstring on ``stride``), and a picture of it for cut detection (RGB, or a
    video's limited-range luma plane: see ``thumbnail``); it returns the
    pairs that are now final, ``radius`` frames behind, in order. ``flush`` returns the rest at the
    end. ``radius`` 0 passes everything straight through. ``passes`` counts the probes run.
    """

    def __init__(self, radius: int = 2, *, cuts: CutDetector | None = None, stride: int = 1,
                 agreement: float | None = None) -> None:
        if radius < 0:
            raise ValueError(f"smoothing radius must be 0 or more, got {radius}")
        if stride < 1:
            raise ValueError(f"stride must be 1 or more, got {stride}")
        self.radius = radius
        # a frame is output `radius` frames after it came in: by then the pass after it must be known
        self.stride = min(stride, radius + 1)
        self.agreement = AGREEMENT if agreement is None else agreement
        self.passes = 0
        self._weights = temporal_weights(radius) if radius else np.ones(1)
        self._cuts = cuts or CutDetector()
        self._window: deque[_Entry[Item]] = deque()
        self._next = 0  # position in the window of the first entry not yet returned
        self._scene = 0
        self._in_scene = 0  # the coming frame's position in its scene
        self._last_pass: Alpha | None = None  # the scene's latest probability from a pass
        self._between: list[_Entry[Item]] = []  # frames since that pass, probes not yet run

    @property
    def held(self) -> int:
        """How many frames the smoother holds now (never more than 2 * radius + stride)."""
        return len(self._window)

    def push(self, item: Item, probability: Alpha | Probe,
             rgb: RGBImage | npt.NDArray[np.uint8]) -> list[tuple[Item, Alpha]]:
        if self.radius == 0:
            return [(item, self._probability(probability))]
        if self._cuts.is_cut(rgb):
            self._resolve_between()  # the scene ends: no pass after them to agree with
            self._scene += 1
            self._in_scene = 0
            self._last_pass = None
        entry: _Entry[Item] = _Entry(item, None, None, self._scene)
        if callable(probability) and self._in_scene % self.stride:
            entry.probe = probability
            self._between.append(entry)
        else:
            current = self._probability(probability)
            entry.measure(current)
            if self._between:
                assert self._last_pass is not None
                if agreement(self._last_pass, current) < self.agreement:
                    self._resolve_between()
                for skipped in self._between:  # these stay without a pass of their own
                    skipped.probe = None  # (nor hold on to their frame)
                self._between = []
            self._last_pass = current
        self._in_scene += 1
        self._window.append(entry)
        return list(self._ready(final=False))

    def _probability(self, probability: Alpha | Probe) -> Alpha:
        if callable(probability):
            self.passes += 1
            return probability()
        return probability

    def _resolve_between(self) -> None:
        for entry in self._between:
            if entry.probe is not None:
                entry.measure(self._probability(entry.probe))
        self._between = []

    def flush(self) -> list[tuple[Item, Alpha]]:
        self._resolve_between()
        return list(self._ready(final=True))

    def _ready(self, final: bool) -> Iterator[tuple[Item, Alpha]]:
        while self._next < len(self._window):
            entry = self._window[self._next]
            # every frame of its window must be decided: the frames after the latest pass wait for the next
            decided = len(self._window) - len(self._between)
            if not (final or self._next + self.radius < decided or self._window[-1].scene != entry.scene):
                return
            item, entry.item = entry.item, None  # a frame and its pixels are not kept after they leave
            yield item, self._smoothed(self._next)  # type: ignore[misc]
            self._next += 1
            while self._next > self.radius:  # keep `radius` frames of the past, no more
                self._window.popleft()
                self._next -= 1

    def _smoothed(self, position: int) -> Alpha:
        centre = self._window[position]
        weighted_sum: Alpha | None = None
        weight_sum: Alpha | None = None
        for offset in range(-self.radius, self.radius + 1):
            index = position + offset
            if not 0 <= index < len(self._window):
                continue
            entry = self._window[index]
            if entry.scene != centre.scene or entry.weighted is None or entry.confidence is None:
                continue
            weight = float(self._weights[offset + self.radius])
            # OpenCV's multiply-adds, in place: a fifth of the time of the same sums in NumPy, which
            # makes a temporary per product (0.15 against 0.74 ms a frame at 256 x 256)
            if weighted_sum is None or weight_sum is None:  # (set together)
                weighted_sum, weight_sum = cv2.multiply(entry.weighted, weight), cv2.multiply(entry.confidence, weight)
            else:
                cv2.scaleAdd(entry.weighted, weight, weighted_sum, dst=weighted_sum)
                cv2.scaleAdd(entry.confidence, weight, weight_sum, dst=weight_sum)
        # a frame without a pass of its own has passes on both sides of it, in its scene
        assert weighted_sum is not None and weight_sum is not None
        # (the confidence is at least CONFIDENCE_FLOOR ** CONFIDENCE_POWER, so the division is safe)
        smoothed = np.asarray(cv2.divide(weighted_sum, weight_sum), dtype=np.float32)
        return np.clip(smoothed, 0.0, 1.0, out=smoothed)
