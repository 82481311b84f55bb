"""The Ray Data engine on a local Ray (2 CPUs) over real photos: the same files as a run in one process."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from data_paths import data_folder, model_file
from helpers import load

from bgremove.cli import main
from bgremove.config import CompositeConfig, CompositeMode

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'bgremove[ray]' or '.[test]')")


@pytest.fixture(autouse=True)
def _selfie() -> None:
    model_file("selfie_segmenter.tflite")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import logging

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real portraits in two folders."""
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted((data_folder("portrait_shen2016") / "images").glob("*.jpg"))[:6]
    for index, source in enumerate(sources):
        (folder / ("left" if index % 2 else "right")).mkdir(exist_ok=True)
        shutil.copy(source, folder / ("left" if index % 2 else "right") / source.name)
    return folder


@pytest.fixture(scope="module")
def masks_in_one_process(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one-process")
    result = CliRunner().invoke(main, [str(photos), "-r", "--mask-only", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    return out


def _same_masks(ours: Path, reference: Path) -> None:
    expected = sorted(path.relative_to(reference) for path in reference.rglob("*.png"))
    assert sorted(path.relative_to(ours) for path in ours.rglob("*.png")) == expected and len(expected) == 6
    for relative in expected:
        assert np.array_equal(load(ours / relative), load(reference / relative)), relative
    assert not list(ours.rglob("*.part"))


def test_ray_data_gives_the_masks_of_one_process(local_ray: None, photos: Path, masks_in_one_process: Path,
                                                 tmp_path: Path) -> None:
    from bgremove.ray_engine import remove_backgrounds_ray

    started = time.perf_counter()
    results = remove_backgrounds_ray([photos], tmp_path / "out", recursive=True,
                                     composite=CompositeConfig(mode=CompositeMode.MASK), concurrency=2)
    print(f"Ray Data, 6 photos, 2 actors: {time.perf_counter() - started:.1f} s")
    assert sorted(result.status for result in results) == ["done"] * 6
    assert {result.output for result in results} == {
        tmp_path / "out" / path.relative_to(photos).with_name(f"{path.stem}_nobg.png")
        for path in photos.rglob("*.jpg")}
    _same_masks(tmp_path / "out", masks_in_one_process)


def test_cli_engine_ray_skips_what_is_done_and_reports_json(local_ray: None, photos: Path,
                                                           masks_in_one_process: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(masks_in_one_process / "left", out / "left")  # half of it done before
    (photos / "right" / "notes.txt").write_text("not a picture")
    try:
        result = CliRunner().invoke(main, [str(photos), "-r", "--mask-only", "-o", str(out), "--engine", "ray",
                                           "-j", "2", "--json"])
    finally:
        (photos / "right" / "notes.txt").unlink()
    assert result.exit_code == 0, result.stderr
    statuses = {Path(item["input"]).parent.name: item["status"] for item in map(json.loads, result.stdout.splitlines())}
    assert statuses == {"left": "skipped", "right": "done"}
    assert "3 done, 3 skipped, 0 failed, 1 not images or videos" in result.stderr
    _same_masks(out, masks_in_one_process)
