"""A time-bounded fuzz of the readers: mutated real files may fail, but only with bgremove's own errors.

Each round flips, deletes, inserts or cuts bytes of a real photo or clip and reads the result the way
the CLI does (probe, then decode). Anything but ``BgRemoveError`` (a crash, a hang is not caught here,
or a raw exception from Pillow or FFmpeg) fails the test with the seed that reproduces it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from data_paths import data_folder
from helpers import save

from bgremove.errors import BgRemoveError
from bgremove.media import read_image
from bgremove.pipeline import probe_media

SECONDS_PER_KIND = 4.0


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buffer = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        kind = int(rng.integers(0, 4))
        position = int(rng.integers(0, max(1, len(buffer))))
        if kind == 0 and buffer:  # flip some bits
            buffer[position] ^= int(rng.integers(1, 256))
        elif kind == 1:  # delete a run
            del buffer[position : position + int(rng.integers(1, 64))]
        elif kind == 2:  # insert junk
            buffer[position:position] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        else:  # cut the end off
            del buffer[max(16, position):]
    return bytes(buffer)


def _read_like_the_cli(path: Path) -> None:
    info = probe_media(path)
    if hasattr(info, "format"):
        read_image(path)
        return
    from bgremove.video import VideoReader

    with VideoReader(path, info) as reader:  # type: ignore[arg-type]
        for index, _frame in enumerate(reader.frames()):
            if index >= 30:
                break


def _fuzz(source: Path, tmp_path: Path, seed: int) -> int:
    data = source.read_bytes()
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + SECONDS_PER_KIND
    rounds = 0
    while time.monotonic() < deadline:
        round_seed = int(rng.integers(0, 2**31))
        target = tmp_path / f"mutant{source.suffix}"
        target.write_bytes(_mutate(data, np.random.default_rng(round_seed)))
        try:
            _read_like_the_cli(target)
        except BgRemoveError as error:
            assert "\n" not in str(error) and str(target) in str(error), (round_seed, str(error))
        except Exception as error:  # noqa: BLE001 (this is what the test looks for)
            pytest.fail(f"{source.name}, round seed {round_seed}: {type(error).__name__}: {error}")
        rounds += 1
    return rounds


def test_fuzz_jpeg_and_png(tmp_path: Path, astronaut: np.ndarray) -> None:
    small = astronaut[::4, ::4].copy()
    jpeg = save(small, tmp_path / "photo.jpg", quality=85)
    png = save(small, tmp_path / "photo.png")
    rounds = _fuzz(jpeg, tmp_path, seed=1) + _fuzz(png, tmp_path, seed=2)
    assert rounds > 50


def test_fuzz_video(tmp_path: Path) -> None:
    source = data_folder("videos_people") / "intel_asl_yes.mkv"
    small = tmp_path / "clip.mkv"
    small.write_bytes(source.read_bytes()[:200_000])  # the first part: enough to decode a few frames
    assert _fuzz(small, tmp_path, seed=3) > 5
