"""What happens when things go wrong, through the real command.

Each bad input goes into a batch next to a good photo. Every case must give one error line that names
the file and the reason, with no traceback. The good photo must still be done, the exit code must be 1,
every input must be byte for byte what it was, and no partial, empty or temporary output may be left.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from data_paths import data_folder, model_file
from helpers import load, save

DIFFICULT = "difficult_inputs"


@pytest.fixture(autouse=True)
def _selfie() -> None:
    model_file("selfie_segmenter.tflite")


def _hashes(folder: Path) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*") if path.is_file() and os.access(path, os.R_OK)}


def _bgremove(*arguments: object, preexec: Callable[[], None] | None = None, timeout: float = 180):
    environment = {**os.environ, "BGREMOVE_MODEL_DIR": str(model_file("selfie_segmenter.tflite").parent)}
    return subprocess.run([sys.executable, "-m", "bgremove", *map(str, arguments)], capture_output=True, text=True,
                          env=environment, preexec_fn=preexec, timeout=timeout)


def _leftovers(folder: Path) -> list[str]:
    """Temporary files, and empty files, anywhere under ``folder``."""
    return sorted(str(path) for path in folder.rglob("*")
                  if path.is_file() and (path.name.endswith(".part") or path.stat().st_size == 0
                                         and "_nobg" in path.name))


@pytest.fixture
def good(tmp_path: Path, astronaut: np.ndarray) -> Path:
    return save(astronaut[::2, ::2].copy(), tmp_path / "good.jpg", quality=90)


def _copy_shared(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return Path(shutil.copyfile(data_folder(DIFFICULT) / name, folder / name))

    return make


def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def _truncated_png(folder: Path) -> Path:
    whole = (data_folder(DIFFICULT) / "astronaut_rgb.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 3])
    return folder / "cut.png"


BAD_INPUTS = [
    ("corrupt_truncated.jpg", _copy_shared("corrupt_truncated.jpg"), "corrupt or truncated"),
    ("truncated.png", _truncated_png, "corrupt or truncated"),
    ("empty.jpg", _write("empty.jpg", b""), "empty file"),
    ("text.jpg", _write("text.jpg", b"this is a shopping list, not a photo\n" * 20), "not an image"),
    ("unsupported.pdf", _write("document.pdf", b"%PDF-1.4\n1 0 obj << >> endobj\n" * 30), "not an image or video"),
    ("missing", lambda folder: folder / "ghost.jpg", "no such file"),
]


@pytest.mark.parametrize(("make", "reason"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_input_fails_alone(tmp_path: Path, good: Path, make, reason: str) -> None:
    bad = make(tmp_path)
    before = _hashes(tmp_path)
    completed = _bgremove(bad, good, "--blur", "25")
    assert completed.returncode == 1, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and bad.name in errors[0] and reason in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr
    assert (tmp_path / "good_nobg.jpg").is_file()
    assert _hashes(tmp_path) == {**before, tmp_path / "good_nobg.jpg": _hashes(tmp_path)[tmp_path / "good_nobg.jpg"]}
    assert not list(tmp_path.glob(f"{bad.stem}_nobg*")) and _leftovers(tmp_path) == []


def test_a_traceback_only_with_verbose(tmp_path: Path, good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import bgremove.pipeline
    from bgremove.cli import main

    def broken(*arguments: object, **options: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(bgremove.pipeline, "write_image", broken)
    quiet = CliRunner().invoke(main, [str(good)])
    assert quiet.exit_code == 1 and "unexpected ZeroDivisionError: a bug" in quiet.stderr
    assert "Traceback" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 2
    loud = CliRunner().invoke(main, [str(good), "-v"])
    assert loud.exit_code == 1 and "Traceback" in loud.stderr


def _drop_file_permission_override() -> None:
    """Drop root's power to read any file, so permissions apply to this process as to a user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_file(tmp_path: Path, good: Path, astronaut: np.ndarray) -> None:
    locked = save(astronaut, tmp_path / "locked.png")
    locked.chmod(0)
    try:
        preexec = _drop_file_permission_override if os.geteuid() == 0 else None
        completed = _bgremove(locked, good, preexec=preexec)
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"cannot drop root's file-permission override here: {error}")
    finally:
        locked.chmod(0o644)
    assert completed.returncode == 1, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "locked.png: permission denied" in errors[0]
    assert (tmp_path / "good_nobg.png").is_file() and not (tmp_path / "locked_nobg.png").exists()


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (_copy_shared("png_with_jpg_extension_rgba_plants-1.jpg"), (987, 1481)),
        (_copy_shared("derived_16bit_gray_camera.png"), (512, 512)),
        (_copy_shared("derived_16bit_rgb_astronaut.png"), (512, 512)),
        (_copy_shared("real_grayscale_person_camera.png"), (512, 512)),
        (_copy_shared("rgba_cutout_girl-1.png"), (600, 399)),
        (_copy_shared("exif_Portrait_6.jpg"), (1200, 1800)),
        (lambda folder: save(np.full((1, 1, 3), 200, np.uint8), folder / "one.png"), (1, 1)),
        (lambda folder: save(np.full((2, 2, 3), 90, np.uint8), folder / "two.jpg"), (2, 2)),
        (lambda folder: save(np.full((1, 9, 3), 90, np.uint8), folder / "line.png"), (9, 1)),
    ],
    ids=["png-named-jpg", "16bit-gray", "16bit-rgb", "grayscale", "rgba", "exif-6", "1x1", "2x2", "1x9"],
)
@pytest.mark.parametrize("background", [["--transparent"], ["--blur", "45"], ["--mask-only", "--feather", "3"]],
                         ids=["transparent", "blur", "mask"])
def test_difficult_but_valid_images_work(tmp_path: Path, make, size: tuple[int, int], background: list[str]) -> None:
    from click.testing import CliRunner

    from bgremove.cli import main

    source = make(tmp_path)
    before = _hashes(tmp_path)
    result = CliRunner().invoke(main, [str(source), "-o", str(tmp_path / "out"), *background])
    assert result.exit_code == 0, result.stderr
    (output,) = (tmp_path / "out").iterdir()
    pixels = load(output)
    assert (pixels.shape[1], pixels.shape[0]) == size
    assert _hashes(tmp_path / "out") and all(_hashes(tmp_path)[path] == digest for path, digest in before.items())


def test_a_33_megapixel_photo_works_in_bounded_memory(tmp_path: Path) -> None:
    photo = data_folder(DIFFICULT) / "derived_very_large_7680x4320_person.jpg"
    completed = _bgremove(photo, "-o", tmp_path, "--blur", "45")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert completed.returncode == 0, completed.stderr
    assert load(tmp_path / f"{photo.stem}_nobg.jpg").shape == (4320, 7680, 3)
    print(f"33 MP photo, --blur 45: peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 2500


def test_a_folder_without_images_is_reported(tmp_path: Path, good: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    completed = _bgremove(empty, good)
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "empty: no images or videos found" in errors[0]
    assert (tmp_path / "good_nobg.png").is_file() and "1 done, 0 skipped, 1 failed" in completed.stderr


def test_output_folder_that_cannot_be_written(tmp_path: Path, good: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    before = _hashes(tmp_path)
    completed = _bgremove(good, "-o", blocker / "sub")
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "cannot write" in errors[0] and "Traceback" not in completed.stderr
    assert _hashes(tmp_path) == before


def test_disk_full(tmp_path: Path, good: Path) -> None:
    """Files may grow to 50 kB (RLIMIT_FSIZE): the transparent PNG cannot be written, the mask can."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    shutil.copyfile(good, tmp_path / "small.jpg")
    before = _hashes(tmp_path)
    completed = _bgremove(good, preexec=limit_file_size)
    assert completed.returncode == 1
    assert "good_nobg.png: cannot write: File too large" in completed.stderr
    assert _hashes(tmp_path) == before and _leftovers(tmp_path) == []
    assert not (tmp_path / "good_nobg.png").exists()
    masks = _bgremove(tmp_path / "small.jpg", "--mask-only", preexec=limit_file_size)
    assert masks.returncode == 0 and (tmp_path / "small_nobg.png").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--suffix", "/../../escaped"], "--suffix"),
        (["--suffix", "a/b"], "--suffix"),
    ],
)
def test_output_names_cannot_escape(tmp_path: Path, good: Path, arguments: list[str], message: str) -> None:
    completed = _bgremove(good, "-o", tmp_path / "out", *arguments)
    assert completed.returncode == 2 and message in completed.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.parent.glob("escaped*"))


def test_a_symlink_loop_under_recursion(tmp_path: Path, good: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "back").symlink_to(tmp_path, target_is_directory=True)
    completed = _bgremove(tmp_path, "-r")
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "good_nobg.png").is_file() and "1 done" in completed.stderr


def test_the_same_input_twice_and_two_inputs_for_one_output(tmp_path: Path, good: Path, astronaut) -> None:
    twin = save(astronaut[::2, ::2].copy(), tmp_path / "good.png")
    before = _hashes(tmp_path)
    completed = _bgremove(good, good, twin)
    assert completed.returncode == 1
    assert "given more than once" in completed.stderr and "also the output of" in completed.stderr
    assert (tmp_path / "good_nobg.png").is_file()
    assert all(_hashes(tmp_path)[path] == digest for path, digest in before.items())


@pytest.mark.parametrize("extension", [".mp4", ".mkv"])
def test_a_video_with_zero_frames(tmp_path: Path, good: Path, extension: str) -> None:
    import av

    empty = tmp_path / f"zero{extension}"
    with av.open(str(empty), "w") as container:  # a video stream, and not one frame in it
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # (PyAV 18 writes no file at all where no packet is muxed)
        for packet in stream.encode(None):
            container.mux(packet)
    before = _hashes(tmp_path)
    completed = _bgremove(empty, good, "--blur", "9")
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and empty.name in errors[0] and "Traceback" not in completed.stderr
    assert not list(tmp_path.glob("zero_nobg*")) and _leftovers(tmp_path) == []
    assert all(_hashes(tmp_path)[path] == digest for path, digest in before.items())


_WRITER_WHILE_LOADING = """
import os, sys, threading
from bgremove import Pipeline
from bgremove.types import Frame
import numpy as np

written, stop = [], threading.Event()
def write():
    while not stop.is_set():
        line = f"line {len(written)}\\n".encode()
        os.write(2, line)
        written.append(line)
        stop.wait(0.0005)
writer = threading.Thread(target=write)
writer.start()
with Pipeline() as pipeline:
    pipeline.open()  # the model loads while the other thread writes
    pipeline.matte(Frame(rgb=np.zeros((64, 64, 3), np.uint8)))  # and the first inference
stop.set()
writer.join()
print(len(written))
"""


def test_a_program_using_the_library_keeps_what_its_threads_write_to_stderr() -> None:
    """The library does not point descriptor 2 at /dev/null to hide MediaPipe's log lines (only the command,
    its workers and its Ray actors do): a program's other threads write there meanwhile."""
    environment = {**os.environ, "BGREMOVE_MODEL_DIR": str(model_file("selfie_segmenter.tflite").parent)}
    completed = subprocess.run([sys.executable, "-c", _WRITER_WHILE_LOADING], capture_output=True, text=True,
                               env=environment, timeout=120, check=True)
    count = int(completed.stdout.strip())
    # (each line is one write; MediaPipe's own lines may be written in parts around it)
    received = [int(number) for number in re.findall(r"line (\d+)\n", completed.stderr)]
    assert count > 10 and received == list(range(count))


def test_an_error_is_reported_while_the_video_model_loads(tmp_path: Path, good: Path) -> None:
    """A video's model loads in a thread while the main thread goes on, and MediaPipe's native log lines are
    hidden meanwhile by pointing descriptor 2 at /dev/null: the report of an input that failed then (here a
    missing video, whose name starts the model loading) must still reach stderr, and so must the summary."""
    missing = tmp_path / "missing.mp4"
    completed = _bgremove(missing, good, "--blur", "9")
    assert completed.returncode == 1
    lines = completed.stderr.splitlines()
    assert f"bgremove: error: {missing}: no such file" in lines
    assert any(line.startswith("bgremove: 1 done, 0 skipped, 1 failed") for line in lines)
    assert (tmp_path / "good_nobg.jpg").is_file()
