"""MediaPipe Tasks ``ImageSegmenter`` backend: selfie, selfie-landscape, hair, multiclass, deeplab and
any ``.tflite`` segmentation model with the Tasks metadata."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SegmenterConfig
from ..errors import ModelUnavailable
from ..models import ModelSpec
from ..native_logs import quiet_native_stderr
from ..types import Frame, Segmentation
from . import shrink_for_model

logger = logging.getLogger(__name__)

# For a model whose input size we do not know, frames are shrunk to this long side before MediaPipe
# sees them: it resizes to the network's input anyway, and a smaller frame saves that work and the
# full-resolution float32 masks it would otherwise return.
_CUSTOM_MODEL_LONG_SIDE = 512


class _LazyFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules as usual but loads each only when one of its attributes is first used
    (``importlib.util.LazyLoader``)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


# What ``import mediapipe`` pulls in that segmentation never uses: its drawing helpers, which import
# matplotlib (90 ms here), its audio tasks, which import sounddevice (50 ms), and its text, retrieval
# and decision tasks (14, 28 and 15 ms). Lazy, each runs only if something uses it: the audio
# package's own guarded ``import sounddevice`` included, so a machine without PortAudio behaves as
# before wherever audio is used.
_UNUSED_BY_SEGMENTATION = (
    "mediapipe.tasks.python.audio",
    "mediapipe.tasks.python.text",
    "mediapipe.tasks.python.retrieval",
    "mediapipe.tasks.python.decision",
    "mediapipe.tasks.python.vision.drawing_utils",
    "mediapipe.tasks.python.vision.drawing_styles",
    "matplotlib.pyplot",
)


def _import_mediapipe() -> tuple[Any, Any]:
    """MediaPipe Tasks' ``BaseOptions`` and ``vision``, imported with the modules segmentation does not
    need made lazy: 0.65 -> 0.2 s. A lazy module loads as usual the first time anyone uses it."""
    finder = _LazyFinder({name for name in _UNUSED_BY_SEGMENTATION if name not in sys.modules})
    sys.meta_path.insert(0, finder)
    try:
        from mediapipe.tasks.python import BaseOptions, vision
    finally:
        sys.meta_path.remove(finder)
    return BaseOptions, vision


class MediaPipeSegmenter:
    """One MediaPipe ``ImageSegmenter`` in IMAGE or VIDEO running mode, giving confidence masks."""

    def __init__(
        self, model_path: Path, spec: ModelSpec | None, config: SegmenterConfig, *, video: bool = False
    ) -> None:
        BaseOptions, vision = _import_mediapipe()  # noqa: N806

        self._video = video
        self._input_size = spec.input_size if spec is not None else None
        self._last_timestamp_ms = -1
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        try:
            with quiet_native_stderr():
                self._segmenter = vision.ImageSegmenter.create_from_options(options)
        except (RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelUnavailable(f"{model_path}: cannot load as a MediaPipe segmentation model: {reason}") from None
        labels = tuple(self._segmenter.labels or ())
        self.labels: tuple[str, ...] = labels
        self._first = True
        logger.debug("loaded %s (%s mode), labels %s", model_path, "video" if video else "image", labels)

    def model_size(self, width: int, height: int) -> tuple[int, int] | None:
        if self._input_size is not None:
            return self._input_size
        scale = _CUSTOM_MODEL_LONG_SIDE / max(height, width)
        if scale >= 1:
            return None
        return max(1, round(width * scale)), max(1, round(height * scale))

    def _model_input(self, frame: Frame) -> np.ndarray:
        size = self.model_size(frame.width, frame.height)
        pixels = frame.model_rgb
        return pixels if size is None else shrink_for_model(pixels, *size)

    def segment(self, frame: Frame) -> Segmentation:
        import mediapipe as mp

        pixels = np.ascontiguousarray(self._model_input(frame))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)
        # The first inference is where TFLite announces its delegates on stderr.
        quiet = quiet_native_stderr() if self._first else contextlib.nullcontext()
        with quiet:
            if self._video:
                timestamp_ms = max(round(frame.timestamp * 1000), self._last_timestamp_ms + 1)
                self._last_timestamp_ms = timestamp_ms
                result = self._segmenter.segment_for_video(image, timestamp_ms)
            else:
                result = self._segmenter.segment(image)
        self._first = False
        masks = result.confidence_masks or []
        confidences = np.stack([np.asarray(mask.numpy_view(), dtype=np.float32).reshape(mask.height, mask.width)
                                for mask in masks])
        if not self.labels:  # a model without label metadata
            self.labels = tuple(f"class_{index}" for index in range(len(masks)))
        return Segmentation(confidences=confidences, labels=self.labels)

    def close(self) -> None:
        segmenter = getattr(self, "_segmenter", None)
        if segmenter is not None:
            segmenter.close()
            self._segmenter = None

    def __enter__(self) -> MediaPipeSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
