"""Where the real models and test data live: never in the repository, so tests that need them skip.

``BGREMOVE_MODEL_DIR`` / ``BGREMOVE_DATA_DIR`` point elsewhere; by default both sit in ``shared/`` next to
the checkout (``<checkout>/../shared/models`` and ``<checkout>/../shared/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parents[2] / "shared"

MODEL_DIR = Path(os.environ.get("BGREMOVE_MODEL_DIR") or _SHARED / "models")
DATA_DIR = Path(os.environ.get("BGREMOVE_DATA_DIR") or _SHARED / "data")


def model_file(filename: str) -> Path:
    """The path of a real model file, or skip the calling test with a reason that names it."""
    path = MODEL_DIR / filename
    if not path.is_file():
        pytest.skip(f"model file {path} is absent (set BGREMOVE_MODEL_DIR to the folder that holds it)")
    return path


def data_folder(name: str) -> Path:
    """The path of a folder of real test data, or skip the calling test with a reason that names it."""
    path = DATA_DIR / name
    if not path.is_dir():
        pytest.skip(f"test data folder {path} is absent (set BGREMOVE_DATA_DIR to the shared data folder)")
    return path
