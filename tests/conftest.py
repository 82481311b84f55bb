"""Shared fixtures: real photos made from scikit-image, the CLI runner, and the model folder.

The product finds models through BGREMOVE_MODEL_DIR; tests point it at the shared folder and keep the
download cache in a temporary folder, so no test ever reaches the network or the user's cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from data_paths import MODEL_DIR
from helpers import save

os.environ.setdefault("BGREMOVE_MODEL_DIR", str(MODEL_DIR))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGREMOVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.chelsea())


@pytest.fixture
def astronaut_jpg(tmp_path: Path, astronaut: np.ndarray) -> Path:
    return save(astronaut, tmp_path / "astronaut.jpg", quality=95)


@pytest.fixture
def chelsea_jpg(tmp_path: Path, chelsea: np.ndarray) -> Path:
    return save(chelsea, tmp_path / "chelsea.jpg", quality=95)


@pytest.fixture
def starfield(tmp_path: Path) -> Path:
    from skimage import data

    return save(np.ascontiguousarray(data.hubble_deep_field()), tmp_path / "starfield.png")


@pytest.fixture
def run() -> Iterator[object]:
    """Run the CLI in-process: ``run("photo.jpg", "--blur", "45")`` -> click's Result."""
    from bgremove.cli import main

    runner = CliRunner()

    def invoke(*arguments: object) -> Result:
        return runner.invoke(main, [str(argument) for argument in arguments], catch_exceptions=False)

    yield invoke
