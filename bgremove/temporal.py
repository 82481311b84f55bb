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
default is 3 (``bench/eval.py --sets davis``; docs/README-quality.md).

Smoothing runs on the model-resolution probability (e.g. 256 x 256), before resizing, thresholding and
feathering, so it costs little and a hard ``--threshold`` matte flickers less too. It holds at most
``2 * radius + 1`` frames: memory does not grow with the video's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
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


def thumbnail(rgb: RGBImage) -> npt.NDArray[np.float32]:
    """A 32 x 32 gray float32 picture of the frame, for cut detection."""
    from .segmenters import shrink_for_model

    small = shrink_for_model(rgb, *_THUMBNAIL)  # area averages, without OpenCV's slow fractional path
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), dtype=np.float32)


class CutDetector:
    """Says whether each new frame starts a new scene, from the change of a small gray thumbnail."""

    def __init__(self, min_change: float = CUT_MIN_CHANGE, ratio: float = CUT_RATIO, memory: int = 8) -> None:
        self.min_change = min_change
        self.ratio = ratio
        self._previous: npt.NDArray[np.float32] | None = None
        self._recent: deque[float] = deque(maxlen=memory)

    def is_cut(self, rgb: RGBImage) -> bool:
        current = thumbnail(rgb)
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
    weighted: Alpha  # confidence * probability
    confidence: Alpha
    scene: int


def temporal_weights(radius: int) -> npt.NDArray[np.float64]:
    """Gaussian weights for offsets -radius..radius, sigma = radius / 2."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    sigma = max(radius / 2.0, 0.5)
    return np.exp(-0.5 * (offsets / sigma) ** 2)


class TemporalSmoother(Generic[Item]):
    """Streams (item, probability) pairs through a centred, confidence-weighted window of frames.

    ``push`` takes one frame's item (anything: the pipeline passes the Frame), its foreground
    probability (h x w float32 in [0, 1], the same size for every frame) and its RGB pixels (for cut
    detection); it returns the pairs that are now final, ``radius`` frames behind, in order.
    ``flush`` returns the rest at the end. ``radius`` 0 passes everything straight through.
    """

    def __init__(self, radius: int = 2, *, cuts: CutDetector | None = None) -> None:
        if radius < 0:
            raise ValueError(f"smoothing radius must be 0 or more, got {radius}")
        self.radius = radius
        self._weights = temporal_weights(radius) if radius else np.ones(1)
        self._cuts = cuts or CutDetector()
        self._window: deque[_Entry[Item]] = deque()
        self._next = 0  # position in the window of the first entry not yet returned
        self._scene = 0

    @property
    def held(self) -> int:
        """How many frames the smoother holds now (never more than 2 * radius + 1)."""
        return len(self._window)

    def push(self, item: Item, probability: Alpha, rgb: RGBImage) -> list[tuple[Item, Alpha]]:
        if self.radius == 0:
            return [(item, probability)]
        if self._cuts.is_cut(rgb):
            self._scene += 1
        probability = np.asarray(probability, dtype=np.float32)
        confidence = (np.abs(2.0 * probability - 1.0) + CONFIDENCE_FLOOR) ** CONFIDENCE_POWER
        self._window.append(_Entry(item, confidence * probability, confidence, self._scene))
        return list(self._ready(final=False))

    def flush(self) -> list[tuple[Item, Alpha]]:
        return list(self._ready(final=True))

    def _ready(self, final: bool) -> Iterator[tuple[Item, Alpha]]:
        while self._next < len(self._window):
            entry = self._window[self._next]
            later = len(self._window) - 1 - self._next
            if not (final or later >= self.radius or self._window[-1].scene != entry.scene):
                return
            item, entry.item = entry.item, None  # a frame and its pixels are not kept after they leave
            yield item, self._smoothed(self._next)  # type: ignore[misc]
            self._next += 1
            while self._next > self.radius:  # keep `radius` frames of the past, no more
                self._window.popleft()
                self._next -= 1

    def _smoothed(self, position: int) -> Alpha:
        centre = self._window[position]
        weighted_sum = np.zeros_like(centre.weighted)
        weight_sum = np.zeros_like(centre.confidence)
        for offset in range(-self.radius, self.radius + 1):
            index = position + offset
            if not 0 <= index < len(self._window):
                continue
            entry = self._window[index]
            if entry.scene != centre.scene:
                continue
            weight = float(self._weights[offset + self.radius])
            weighted_sum += weight * entry.weighted
            weight_sum += weight * entry.confidence
        return np.clip(weighted_sum / weight_sum, 0.0, 1.0).astype(np.float32, copy=False)
