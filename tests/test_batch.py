"""Batches as scripts run them, on real photos: globs, mirrored trees, collisions, re-runs, dry runs,
stdin/stdout, --json, exit codes, worker processes, and runs killed half-way and run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from data_paths import data_folder, model_file
from helpers import load

from bgremove.cli import main


@pytest.fixture(autouse=True)
def _selfie() -> None:
    model_file("selfie_segmenter.tflite")


@pytest.fixture(scope="module")
def portraits() -> list[Path]:
    """Six real portraits (600x800 JPEG)."""
    return sorted((data_folder("portrait_shen2016") / "images").glob("*.jpg"))[:6]


@pytest.fixture
def shots(tmp_path: Path, portraits: list[Path]) -> Path:
    """shots/a/photo.jpg, shots/b/photo.jpg (two different photos with one name), shots/b/c/{3,4,5}.jpg,
    and a note that is not a picture."""
    root = tmp_path / "shots"
    for place, source in (("a/photo.jpg", portraits[0]), ("b/photo.jpg", portraits[1]), ("b/c/3.jpg", portraits[2]),
                          ("b/c/4.jpg", portraits[3]), ("b/c/5.jpg", portraits[4])):
        (root / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / place)
    (root / "a" / "notes.txt").write_text("not a picture")
    return root


def invoke(*arguments: object, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(argument) for argument in arguments], input=stdin, catch_exceptions=False)


def _visible_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.part"))


def _complete(path: Path) -> bool:
    """Whether an image file decodes to the end."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Inputs and output names


def test_two_folders_are_mirrored_not_flattened(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(shots / "a", shots / "b", "-r", "-o", out, "--mask-only")
    assert result.exit_code == 0, result.stderr
    relative = [path.relative_to(out).as_posix() for path in _visible_files(out)]
    assert relative == ["a/photo_nobg.png", "b/c/3_nobg.png", "b/c/4_nobg.png", "b/c/5_nobg.png", "b/photo_nobg.png"]
    assert not np.array_equal(load(out / "a" / "photo_nobg.png"), load(out / "b" / "photo_nobg.png"))
    assert "5 done, 0 skipped, 0 failed, 1 not images or videos" in result.stderr


@pytest.mark.parametrize("quoted", [True, False], ids=["pattern", "shell-expanded"])
def test_globs_quoted_or_not_give_the_same_tree(shots: Path, tmp_path: Path, quoted: bool) -> None:
    out = tmp_path / "out"
    arguments = [str(shots / "*" / "photo.jpg")] if quoted else [shots / "a" / "photo.jpg", shots / "b" / "photo.jpg"]
    result = invoke(*arguments, "-o", out, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{shots / 'a' / 'photo.jpg'} -> {out / 'a' / 'photo_nobg.png'}",
        f"{shots / 'b' / 'photo.jpg'} -> {out / 'b' / 'photo_nobg.png'}",
    ]


def test_recursive_glob_skips_non_media_and_our_outputs(shots: Path, tmp_path: Path) -> None:
    shutil.copy(shots / "a" / "photo.jpg", shots / "a" / "photo_nobg.jpg")  # looks like an earlier output
    result = invoke(str(shots / "**" / "*"), "--dry-run", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines()] == [
        str(shots / name) for name in ("a/photo.jpg", "b/c/3.jpg", "b/c/4.jpg", "b/c/5.jpg", "b/photo.jpg")
    ]
    assert "1 not images or videos" in result.stderr


def test_a_pattern_that_matches_nothing_is_an_error_for_that_argument(shots: Path, tmp_path: Path) -> None:
    result = invoke(str(shots / "*.png"), shots / "a" / "photo.jpg", "-o", tmp_path / "out", "--mask-only")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"bgremove: error: {shots / '*.png'}: no file matches this pattern"]
    assert (tmp_path / "out" / "photo_nobg.png").is_file()


def test_same_output_name_is_an_error_for_the_second_before_anything_is_written(shots: Path, tmp_path: Path) -> None:
    from PIL import Image

    with Image.open(shots / "a" / "photo.jpg") as image:
        image.save(shots / "a" / "photo.png")
    planned = invoke(shots / "a", "-o", tmp_path / "out", "--dry-run")
    assert planned.exit_code == 1
    assert planned.stdout.splitlines()[1] == (f"failed: {shots / 'a' / 'photo.png'}: output "
                                              f"{tmp_path / 'out' / 'photo_nobg.png'} is also the output of "
                                              f"{shots / 'a' / 'photo.jpg'}")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------
# Re-runs, dry runs, --json, exit codes


def test_rerun_skips_overwrite_redoes_and_dry_run_writes_nothing(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Dry run with a model file that does not exist: it plans without loading any model.
    dry = invoke(shots, "-r", "-o", out, "--mask-only", "--dry-run", "-m", tmp_path / "absent.tflite")
    assert dry.exit_code == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == 5 and all(" -> " in line for line in dry.stdout.splitlines())
    assert "dry run: 5 to write, 0 skipped, 0 failed" in dry.stderr and not out.exists()

    first = invoke(shots, "-r", "-o", out, "--mask-only")
    assert first.exit_code == 0 and "5 done, 0 skipped, 0 failed" in first.stderr
    (out / "b" / "c" / "4_nobg.png").unlink()
    written = {path: path.stat().st_mtime_ns for path in _visible_files(out)}

    dry_again = invoke(shots, "-r", "-o", out, "--mask-only", "--dry-run")
    assert dry_again.stdout.count("skipped: ") == 4 and "dry run: 1 to write, 4 skipped" in dry_again.stderr

    again = invoke(shots, "-r", "-o", out, "--mask-only", "--json")
    assert again.exit_code == 0
    statuses = {Path(item["input"]).name + ":" + item["status"] for item in map(json.loads, again.stdout.splitlines())}
    assert statuses == {"photo.jpg:skipped", "3.jpg:skipped", "4.jpg:done", "5.jpg:skipped"}
    assert "1 done, 4 skipped, 0 failed" in again.stderr
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in written.items() if path.exists())

    redo = invoke(shots, "-r", "-o", out, "--mask-only", "--overwrite", "-q")
    assert redo.exit_code == 0 and redo.stderr == ""
    assert all(path.stat().st_mtime_ns > mtime for path, mtime in written.items() if path.exists())


def test_json_lines_parsed_back_with_exit_code_1(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (shots / "a" / "broken.jpg").write_bytes(b"not a picture at all")
    (out / "b").mkdir(parents=True)
    (out / "b" / "photo_nobg.png").write_bytes(b"an earlier result")
    result = invoke(shots / "a", shots / "b", "-o", out, "--json")
    assert result.exit_code == 1
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(item) == {"input", "output", "status", "error", "seconds", "frames"} for item in objects)
    by_input = {item["input"]: item for item in objects}
    assert set(by_input) == {str(shots / name) for name in ("a/broken.jpg", "a/photo.jpg", "b/photo.jpg")}
    done, skipped, failed = (by_input[str(shots / name)] for name in ("a/photo.jpg", "b/photo.jpg", "a/broken.jpg"))
    assert done["status"] == "done" and done["output"] == str(out / "a" / "photo_nobg.png") and done["error"] is None
    assert done["frames"] == 1 and 0 < done["seconds"] < 30 and Path(done["output"]).is_file()
    assert skipped["status"] == "skipped" and "exists" in skipped["error"] and skipped["frames"] == 0
    assert failed["status"] == "failed" and failed["output"] is None and "broken.jpg" in failed["error"]
    assert "1 done, 1 skipped, 1 failed, 1 not images or videos" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-j", "0"], "'0' is not a number of jobs from 1 up, or auto"),
        (["-j", "many"], "'many' is not a number of jobs"),
        (["-", "--json"], "--json does not apply to '-'"),
        (["-", "PHOTO"], "'-' (stdin) must be the only input"),
        (["--ray-address", "auto"], "--ray-address applies only with --engine ray"),
        (["--engine", "ray", "--ray-address", "ray://head:10001"], "Ray Data does not run through Ray Client"),
    ],
)
def test_batch_usage_errors_exit_2(shots: Path, arguments: list[str], message: str) -> None:
    result = invoke(*[str(shots / "a" / "photo.jpg") if item == "PHOTO" else item for item in arguments],
                    *([] if "-" in arguments else [shots / "a"]))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------
# stdin to stdout


def test_stdin_to_stdout_matches_the_file_run(shots: Path, tmp_path: Path) -> None:
    photo = shots / "a" / "photo.jpg"
    piped = invoke("-", stdin=photo.read_bytes())
    assert piped.exit_code == 0 and piped.stdout_bytes.startswith(b"\x89PNG")
    assert "1 done, 0 skipped, 0 failed" in piped.stderr
    assert invoke(photo, "-o", tmp_path, "-q").exit_code == 0
    assert piped.stdout_bytes == (tmp_path / "photo_nobg.png").read_bytes()

    opaque = invoke("-", "--bg-color", "white", "-q", stdin=photo.read_bytes())
    assert opaque.exit_code == 0 and opaque.stdout_bytes.startswith(b"\xff\xd8") and opaque.stderr == ""


def test_stdin_refuses_a_video_and_fails_on_junk(tmp_path: Path) -> None:
    video = data_folder("video_davis2016") / "videos" / "dog.mp4"
    as_video = invoke("-", stdin=video.read_bytes()[:65536])
    assert as_video.exit_code == 2 and "videos cannot be read from stdin" in as_video.stderr
    junk = invoke("-", stdin=b"hello")
    assert junk.exit_code == 1 and "<stdin>: not an image" in junk.stderr and junk.stdout_bytes == b""


def test_stdin_in_a_real_pipe(shots: Path) -> None:
    with (shots / "a" / "photo.jpg").open("rb") as photo:
        completed = subprocess.run([sys.executable, "-m", "bgremove", "-", "--mask-only"], stdin=photo,
                                   capture_output=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.decode().startswith("bgremove: 1 done")
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(completed.stdout)).size == (600, 800)


# ---------------------------------------------------------------------------------------------------
# Worker processes


# bgremove as ``python -m bgremove`` runs it, on a slow disk: each output's temporary stays a fifth of a
# second, complete, before it is renamed. On a fast disk a small photo's temporary lives a millisecond or
# two, and a test polling for one could miss every one of them while the machine is busy.
_SLOW_DISK = """
import contextlib, sys, time
import bgremove.media as media
from bgremove.cli import run
real = media.atomic_output
@contextlib.contextmanager
def slow(path):
    with real(path) as temporary:
        yield temporary
        time.sleep(0.2)
media.atomic_output = slow
sys.argv[0] = "bgremove"
run()
"""


def _bgremove(*arguments: object, slow_disk: bool = False, **options: object) -> subprocess.Popen[str]:
    """``python -m bgremove ARGUMENTS`` started in a session of its own; with ``slow_disk``, every output's
    temporary is kept a while before its rename (``_SLOW_DISK``)."""
    command = [sys.executable, "-c", _SLOW_DISK] if slow_disk else [sys.executable, "-m", "bgremove"]
    return subprocess.Popen([*command, *map(str, arguments)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **options)  # type: ignore[call-overload]


def _children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(map(_alive, pids)):
        assert time.monotonic() < deadline, f"processes outlived their parent: {[p for p in pids if _alive(p)]}"
        time.sleep(0.05)


def test_two_workers_give_the_same_files_and_exit_cleanly(shots: Path, tmp_path: Path) -> None:
    assert invoke(shots, "-r", "-o", tmp_path / "one", "-q").exit_code == 0
    process = _bgremove(shots, "-r", "-o", tmp_path / "two", "-j", "2", "--json")
    stdout, stderr = process.communicate(timeout=120)  # workers that hang on exit would time out here
    assert process.returncode == 0, stderr
    assert sorted(Path(json.loads(line)["input"]).relative_to(shots).as_posix() for line in stdout.splitlines()) == [
        "a/photo.jpg", "b/c/3.jpg", "b/c/4.jpg", "b/c/5.jpg", "b/photo.jpg"]
    one, two = _visible_files(tmp_path / "one"), _visible_files(tmp_path / "two")
    assert [path.relative_to(tmp_path / "one") for path in one] == [path.relative_to(tmp_path / "two") for path in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))
    assert "5 done, 0 skipped, 0 failed" in stderr and "Traceback" not in stderr


def test_videos_in_workers_are_whole_and_identical(tmp_path: Path, portraits: list[Path]) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name in ("dance-twirl", "libby"):
        (source / f"{name}.mp4").symlink_to(data_folder("video_davis2016") / "videos" / f"{name}.mp4")
    shutil.copy(portraits[0], source / "photo.jpg")
    # --segment-every 1: whether a frame between two passes gets its own depends on how far the passes
    # agree, and rounding that differs with the model's threads can tip a frame over the threshold.
    # --crf 0: lossless, since x264 now and then codes the same frames another way (a CI run here gave
    # 32 levels at one pixel); what is compared is then the mattes themselves.
    options = ("--mask-only", "--end", "1", "--segment-every", "1", "--crf", "0")
    assert invoke(source, "-o", tmp_path / "one", *options, "-q").exit_code == 0
    process = _bgremove(source, "-o", tmp_path / "two", *options, "-j", "2", "--json")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    frames = {Path(item["input"]).name: item["frames"] for item in map(json.loads, stdout.splitlines())}
    assert frames == {"dance-twirl.mp4": 24, "libby.mp4": 24, "photo.jpg": 1}
    assert (tmp_path / "one" / "photo_nobg.png").read_bytes() == (tmp_path / "two" / "photo_nobg.png").read_bytes()
    from video_helpers import decode_frames

    for name in ("dance-twirl_nobg.mp4", "libby_nobg.mp4"):
        alone, alone_times, _ = decode_frames(tmp_path / "one" / name, fmt="gray")
        worker, worker_times, _ = decode_frames(tmp_path / "two" / name, fmt="gray")
        assert worker_times == alone_times and len(worker) == 24  # every frame, in order
        # Threads differ (a worker gets cores // 2): rounding may move a few matte pixels by a level or two.
        difference = np.abs(np.stack(worker).astype(int) - np.stack(alone).astype(int))
        assert difference.max() <= 4 and (difference > 0).mean() < 1e-3, name


def test_a_bad_label_with_workers_is_one_usage_error(shots: Path, tmp_path: Path) -> None:
    process = _bgremove(shots, "-r", "-o", tmp_path / "out", "-j", "2", "--keep", "dog")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert stderr.strip().splitlines() == [
        "bgremove: error: unknown label 'dog' for model 'selfie'; valid labels: selfie (see bgremove --help)"]
    assert not (tmp_path / "out").exists() or not _visible_files(tmp_path / "out")


# ---------------------------------------------------------------------------------------------------
# Interrupted and killed runs


def test_a_ctrl_c_that_lands_in_a_finalizer_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from bgremove.batch import interrupts_survive_finalizers

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt here, inside __del__
            sum(range(1000))

    def work() -> bool:
        Finalized()  # collected at once
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            pass
        return True

    dropped: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    assert work() and dropped == [KeyboardInterrupt]  # Python alone drops it: the work ends normally
    with pytest.raises(KeyboardInterrupt), interrupts_survive_finalizers():
        work()
    assert dropped == [KeyboardInterrupt]


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real photos, enough that a run is still going when it is stopped."""
    folder = tmp_path_factory.mktemp("many")
    for path in sorted((data_folder("person_seg_vikram") / "images").glob("*.jpg"))[:40]:
        shutil.copy(path, folder / path.name)
    return folder


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not get there in time"
        time.sleep(0.005)


def _outputs(folder: Path) -> list[Path]:
    return _visible_files(folder) if folder.exists() else []


def _check_resumes(source: Path, out: Path, *arguments: str) -> None:
    """After a stop: what is visible is complete; a second run finishes the rest and leaves nothing."""
    assert all(_complete(path) for path in _outputs(out))
    rerun = subprocess.run([sys.executable, "-m", "bgremove", str(source), "-o", str(out), *arguments],
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert len(_outputs(out)) == len(list(source.iterdir())) and all(_complete(path) for path in _outputs(out))
    assert _temporaries(out) == []


@pytest.mark.parametrize(
    ("stop", "jobs", "whole_group"),
    [(signal.SIGINT, "1", False), (signal.SIGINT, "2", True), (signal.SIGTERM, "2", False)],
    ids=["sigint", "ctrl-c-with-workers", "sigterm-with-workers"],
)
def test_stopped_half_way_exits_130_without_partial_files(many_photos: Path, tmp_path: Path, stop: int, jobs: str,
                                                          whole_group: bool) -> None:
    out = tmp_path / "out"
    process = _bgremove(many_photos, "-o", out, "--mask-only", "-j", jobs)
    _wait_for(lambda: len(_outputs(out)) >= 3, process)
    workers = _children(process.pid)
    if whole_group:  # Ctrl-C in a terminal signals every process of the group
        os.killpg(process.pid, stop)
    else:
        os.kill(process.pid, stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr.splitlines()[-1] and "Traceback" not in stderr
    assert 3 <= len(_outputs(out)) < 40 and _temporaries(out) == []
    _wait_gone(workers)
    _check_resumes(many_photos, out, "--mask-only", "-q")


def test_killed_with_workers_leaves_no_orphans_and_resumes(many_photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _bgremove(many_photos, "-o", out, "--mask-only", "-j", "2")
    _wait_for(lambda: len(_outputs(out)) >= 3, process)
    workers = _children(process.pid)
    assert len(workers) >= 2
    process.kill()  # the parent only: its workers must notice and stop by themselves
    process.communicate(timeout=30)
    _wait_gone(workers)
    assert _temporaries(out) == [], [(path.name, path.stat().st_size, workers) for path in _temporaries(out)]
    _check_resumes(many_photos, out, "--mask-only", "-q")


def test_killed_while_writing_photos_resumes(many_photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _bgremove(many_photos, "-o", out, slow_disk=True)  # transparent PNGs, on a slow disk
    _wait_for(lambda: len(_outputs(out)) >= 2 and bool(_temporaries(out)), process)
    process.kill()
    process.communicate(timeout=30)
    assert all(_complete(path) for path in _outputs(out))
    _check_resumes(many_photos, out, "-q")


def test_killed_while_writing_a_video_resumes(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "dance.mp4").symlink_to(data_folder("video_davis2016") / "videos" / "dance-twirl.mp4")
    out = tmp_path / "out"
    arguments = ("--mask-only", "--end", "2")
    process = _bgremove(source, "-o", out, *arguments)
    _wait_for(lambda: any(path.stat().st_size > 0 for path in _temporaries(out)) if out.exists() else False, process)
    process.kill()
    process.communicate(timeout=30)
    assert _outputs(out) == [] and len(_temporaries(out)) == 1  # the killed writer's temporary
    rerun = subprocess.run([sys.executable, "-m", "bgremove", str(source), "-o", str(out), *arguments, "--json"],
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["status"] == "done" and report["frames"] == 48 and Path(report["output"]) == out / "dance_nobg.mp4"
    assert _outputs(out) == [out / "dance_nobg.mp4"] and _temporaries(out) == []


# ---------------------------------------------------------------------------------------------------
# One process: photos read, processed and written in overlapping threads


def test_in_process_overlap_settles_every_failure_in_input_order(
    portraits: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bgremove.pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    names = ["1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"]
    for name, source in zip(names, portraits, strict=False):
        shutil.copy(source, folder / name)
    (folder / "2.jpg").write_bytes(b"not a picture at all")  # fails in the reading thread
    Pipeline = bgremove.pipeline.Pipeline  # noqa: N806
    real_matte, real_composite, real_write = Pipeline.matte, Pipeline.composite, bgremove.pipeline.write_image
    segmented: list[object] = []

    def matte(self, frame):  # type: ignore[no-untyped-def]
        segmented.append(frame)  # in the calling thread, in input order
        return real_matte(self, frame)

    def composite(self, frame, matte):  # type: ignore[no-untyped-def]
        # the third photo (the second that reads) fails here, in a finishing thread
        if len(segmented) > 1 and frame is segmented[1]:
            raise RuntimeError("boom in compositing")
        return real_composite(self, frame, matte)

    def write(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path.name.startswith("4"):
            raise OSError("disk full")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "matte", matte)
    monkeypatch.setattr(Pipeline, "composite", composite)
    monkeypatch.setattr(bgremove.pipeline, "write_image", write)
    result = invoke(folder, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(item["input"]).name for item in objects] == names  # in input order, as -j 1 promises
    assert [item["status"] for item in objects] == ["done", "failed", "failed", "failed", "done"]
    assert "2.jpg" in objects[1]["error"]
    assert "boom in compositing" in objects[2]["error"] and "disk full" in objects[3]["error"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["1_nobg.png", "5_nobg.png"]
    assert _temporaries(tmp_path / "out") == []
    assert all(_complete(tmp_path / "out" / name) for name in ("1_nobg.png", "5_nobg.png"))


@pytest.mark.parametrize(("count", "cores"), [(1, 2), (3, 2), (3, 8)])
def test_opencv_pool_while_photos_overlap(portraits: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          count: int, cores: int) -> None:
    """A batch of photos composites with OpenCV's pool at the cores its own threads leave (one on two
    cores: none), a single photo with the pool as it was; the pool is as it was afterwards."""
    import cv2

    import bgremove.batch
    import bgremove.pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    for index, source in enumerate(portraits[:count]):
        shutil.copy(source, folder / f"{index}.jpg")
    monkeypatch.setattr(bgremove.batch, "available_cores", lambda: cores)
    Pipeline = bgremove.pipeline.Pipeline  # noqa: N806
    real_composite = Pipeline.composite
    seen: list[int] = []

    def composite(self, frame, matte):  # type: ignore[no-untyped-def]
        seen.append(cv2.getNumThreads())
        return real_composite(self, frame, matte)

    monkeypatch.setattr(Pipeline, "composite", composite)
    before = cv2.getNumThreads()
    result = invoke(folder, "-o", tmp_path / "out", "--bg-color", "black", "-q")
    assert result.exit_code == 0, result.output
    expected = before if count == 1 else max(1, cores - 3)
    assert seen == [expected] * count
    assert cv2.getNumThreads() == before
