"""The data that flows through the pipeline: frames in, per-class confidences out.

Only NumPy here, so every module can import these without pulling in a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .yuv import YUVPlanes

RGBImage = npt.NDArray[np.uint8]  # H x W x 3, uint8, RGB order
Alpha = npt.NDArray[np.float32]  # H x W, float32 in [0, 1]
# H x W, uint8 0-255: an alpha matte in 8 bits, the precision outputs have. Compositors take either.
Matte8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Frame:
    """One picture of a stream: an image is a stream of one frame.

    ``rgb`` is H x W x 3 uint8 in RGB order, C-contiguous. ``timestamp`` is in seconds from the start
    of the stream (0.0 for an image); video mode segmenters need it strictly increasing. ``duration``
    is how long a video frame is shown, in seconds (None for an image or when unknown).
    ``alpha`` is the input's own transparency (H x W uint8) when it had one, else None. ``yuv`` is the
    picture as the video decoder gave it (limited-range 4:2:0 planes), when a compositor may use it
    instead of ``rgb`` for the subject's pixels.

    ``preview`` is a small copy of the picture, already at the size the segmenter feeds its model, made
    by a video reader when nothing after segmentation needs full-size RGB (compositing on ``yuv``):
    ``rgb`` is then ``placeholder_pixels`` of the frame's shape, zeros that take no memory, and
    ``model_rgb`` is what segmenters read. A reader may instead give ``make_preview``, which makes
    the preview when ``model_rgb`` is first read (and keeps it): frames the model skips then never
    pay for one.
    """

    rgb: RGBImage
    index: int = 0
    timestamp: float = 0.0
    alpha: npt.NDArray[np.uint8] | None = None
    duration: float | None = None
    yuv: YUVPlanes | None = None
    preview: RGBImage | None = None
    make_preview: Callable[[], RGBImage] | None = None

    @property
    def model_rgb(self) -> RGBImage:
        """The pixels to segment: ``preview`` where the reader made one (or ``make_preview`` makes it
        now), else ``rgb``."""
        if self.preview is None and self.make_preview is not None:
            object.__setattr__(self, "preview", self.make_preview())  # made once, on first use
        return self.preview if self.preview is not None else self.rgb

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def placeholder_pixels(shape: tuple[int, ...]) -> RGBImage:
    """A read-only array of zeros of ``shape`` that takes no memory (stands in for pixels let go)."""
    return np.broadcast_to(np.zeros(1, dtype=np.uint8), shape)


@dataclass(frozen=True)
class Segmentation:
    """What a segmenter says about one frame.

    ``confidences`` is C x h x w float32 in [0, 1] at the model's own resolution (not the frame's),
    one plane per class; ``labels`` names the C classes in order.
    """

    confidences: npt.NDArray[np.float32]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.confidences.ndim != 3 or self.confidences.shape[0] != len(self.labels):
            raise ValueError(
                f"confidences of shape {self.confidences.shape} do not match {len(self.labels)} labels"
            )
