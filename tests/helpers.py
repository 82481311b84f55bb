"""Small helpers the tests share: write and read images, compare masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save(pixels: np.ndarray, path: Path, **options: object) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path, **options)
    return path


def load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
