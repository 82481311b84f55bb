"""What the backends share: the frame shrunk to the model's input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bgremove.segmenters import shrink_for_model


@pytest.mark.parametrize(
    ("frame_size", "target"),
    [
        ((1280, 720), (256, 256)),
        ((1920, 1080), (256, 144)),
        ((4001, 2999), (257, 257)),  # odd sizes, many halvings
        ((600, 800), (512, 512)),  # less than twice the target: one area step
        ((300, 200), (512, 512)),  # enlarging
        ((2000, 300), (256, 256)),  # shrinking one axis, enlarging the other
        ((256, 256), (256, 256)),
    ],
)
def test_shrink_for_model_gives_the_target_size_and_nearly_the_area_average(
    frame_size: tuple[int, int], target: tuple[int, int], astronaut: np.ndarray
) -> None:
    rgb = np.ascontiguousarray(cv2.resize(astronaut, frame_size, interpolation=cv2.INTER_CUBIC))
    small = shrink_for_model(rgb, *target)
    assert small.shape == (target[1], target[0], 3) and small.dtype == np.uint8
    shrinking = target[0] <= frame_size[0] and target[1] <= frame_size[1]
    reference = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    assert np.abs(small.astype(int) - reference).mean() < 1.0


def test_shrink_for_model_returns_a_frame_of_the_right_size_as_it_is(astronaut: np.ndarray) -> None:
    assert shrink_for_model(astronaut, astronaut.shape[1], astronaut.shape[0]) is astronaut


def test_mediapipe_is_imported_without_its_plotting_audio_and_text_modules() -> None:
    import subprocess
    import sys

    pytest.importorskip("mediapipe")
    script = """
import sys
from bgremove.segmenters.mediapipe_tasks import _UNUSED_BY_SEGMENTATION, _import_mediapipe
BaseOptions, vision = _import_mediapipe()
assert vision.ImageSegmenter is not None
assert "matplotlib" not in sys.modules and "sounddevice" not in sys.modules, sorted(sys.modules)
lazy = [name for name, module in sys.modules.items() if type(module).__name__ == "_LazyModule"]
assert lazy and set(lazy) <= set(_UNUSED_BY_SEGMENTATION), lazy
assert "mediapipe.tasks.python.text.text_classifier" not in sys.modules
from mediapipe.tasks.python import audio, decision, retrieval, text  # still usable: each loads on first use
from mediapipe.tasks.python.vision import drawing_utils
assert audio.AudioClassifier is not None and callable(drawing_utils.draw_landmarks)
assert text.TextClassifier and retrieval.SemanticRetriever and decision.DecisionMaker
assert "matplotlib" in sys.modules and "mediapipe.tasks.python.text.text_classifier" in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
