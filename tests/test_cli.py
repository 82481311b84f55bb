"""The CLI as users run it: every option, bad values with one-line errors, outputs checked by pixels."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_paths import data_folder, model_file
from helpers import iou, load, save


@pytest.fixture(autouse=True)
def _selfie() -> None:
    model_file("selfie_segmenter.tflite")


def _person_mask(folder: Path, run, name: str = "astronaut") -> np.ndarray:
    """The selfie model's hard person mask for an image in ``folder``, as bool."""
    result = run(folder / f"{name}.jpg", "--mask-only", "--suffix", "_truth", "-q")
    assert result.exit_code == 0, result.stderr
    return load(folder / f"{name}_truth.png") > 127


def test_default_is_a_transparent_png_next_to_the_input(astronaut_jpg: Path, run) -> None:
    result = run(astronaut_jpg)
    assert result.exit_code == 0, result.stderr
    output = astronaut_jpg.with_name("astronaut_nobg.png")
    rgba = load(output)
    assert rgba.shape == (512, 512, 4)
    person = _person_mask(astronaut_jpg.parent, run)
    assert person.mean() > 0.3
    assert rgba[..., 3][person].mean() > 230 and rgba[..., 3][~person].mean() < 25
    assert "1 done, 0 skipped, 0 failed" in result.stderr


def test_bg_image_puts_the_person_in_front_of_the_stars(astronaut_jpg: Path, starfield: Path, run, astronaut) -> None:
    result = run(astronaut_jpg, "--bg", starfield)
    assert result.exit_code == 0, result.stderr
    output = load(astronaut_jpg.with_name("astronaut_nobg.jpg"))  # opaque: keeps the JPEG format
    assert output.shape == (512, 512, 3)
    person = _person_mask(astronaut_jpg.parent, run)
    from bgremove.compose import fit_background

    stars = fit_background(load(starfield)[..., :3], 512, 512, __import__("bgremove.config").config.BgFit.COVER)
    background = ~person & (np.abs(astronaut.astype(int) - stars.astype(int)).sum(axis=2) > 60)
    assert np.abs(output[background].astype(int) - stars[background].astype(int)).mean() < 12
    assert np.abs(output[person].astype(int) - astronaut[person].astype(int)).mean() < 12


@pytest.mark.parametrize(("name", "options", "code"), [
    ("phone.jpg", {"quality": 95}, 2),  # 4:2:0, as cameras and phones write: kept
    ("full.jpg", {"quality": 95, "subsampling": 0}, 0),  # 4:4:4: kept
    ("drawing.png", {}, 0),  # not a JPEG: full colour at quality 95
])
def test_a_jpeg_output_keeps_the_chroma_layout_of_a_jpeg_input(tmp_path: Path, astronaut, run, name: str,
                                                               options: dict, code: int) -> None:
    from PIL import Image, JpegImagePlugin

    from bgremove.config import CompositeConfig, CompositeMode, OutputConfig
    from bgremove.pipeline import Pipeline
    from bgremove.stdio import process_bytes

    source = save(astronaut, tmp_path / name, **options)
    result = run(source, "--bg-color", "green", "--format", "jpg", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "out" / f"{source.stem}_nobg.jpg") as written:
        assert JpegImagePlugin.get_sampling(written) == code
    with Pipeline(composite=CompositeConfig(CompositeMode.COLOR, color=(0, 255, 0))) as pipeline:  # stdin's way
        piped, fmt = process_bytes(pipeline, source.read_bytes(), OutputConfig(format="JPEG"))
    with Image.open(io.BytesIO(piped)) as written:
        assert fmt == "JPEG" and JpegImagePlugin.get_sampling(written) == code


def test_bg_color_forms_agree(astronaut_jpg: Path, run) -> None:
    for suffix, colour in (("_a", "#00ff00"), ("_b", "0,255,0"), ("_c", "lime")):
        assert run(astronaut_jpg, "--bg-color", colour, "--suffix", suffix, "--format", "png").exit_code == 0
    outputs = [load(astronaut_jpg.with_name(f"astronaut{suffix}.png")) for suffix in ("_a", "_b", "_c")]
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
    person = _person_mask(astronaut_jpg.parent, run)
    assert np.all(outputs[0][~person].mean(axis=0) > (-1, 200, -1))
    assert np.abs(outputs[0][~person].astype(int) - (0, 255, 0)).mean() < 15


def test_blur_blurs_the_background_and_keeps_the_person(astronaut_jpg: Path, astronaut, run) -> None:
    assert run(astronaut_jpg, "--blur", "45", "--format", "png").exit_code == 0
    output = load(astronaut_jpg.with_name("astronaut_nobg.png")).astype(float)
    person = _person_mask(astronaut_jpg.parent, run)
    import cv2

    def sharpness(pixels: np.ndarray, region: np.ndarray) -> float:
        gray = cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(float)
        inner = cv2.erode(region.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        return float(np.abs(cv2.Laplacian(gray, cv2.CV_64F))[inner].mean())

    assert sharpness(output, ~person) < sharpness(astronaut.astype(float), ~person) / 3
    assert sharpness(output, person) > sharpness(astronaut.astype(float), person) * 0.9


def test_desaturate_grays_the_background(astronaut_jpg: Path, run) -> None:
    assert run(astronaut_jpg, "--desaturate", "--format", "png").exit_code == 0
    output = load(astronaut_jpg.with_name("astronaut_nobg.png")).astype(int)
    person = _person_mask(astronaut_jpg.parent, run)
    saturation = output.max(axis=2) - output.min(axis=2)
    assert saturation[~person].mean() < 4 and saturation[person].mean() > 30


def test_mask_only_writes_a_gray_png(astronaut_jpg: Path, run) -> None:
    assert run(astronaut_jpg, "--mask-only", "--threshold", "0.5").exit_code == 0
    mask = load(astronaut_jpg.with_name("astronaut_nobg.png"))
    assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}


def test_feather_softens_a_hard_mask(astronaut_jpg: Path, run) -> None:
    run(astronaut_jpg, "--mask-only", "--threshold", "0.5", "--suffix", "_hard")
    run(astronaut_jpg, "--mask-only", "--threshold", "0.5", "--feather", "6", "--suffix", "_soft")
    hard = load(astronaut_jpg.with_name("astronaut_hard.png"))
    soft = load(astronaut_jpg.with_name("astronaut_soft.png"))
    between = lambda mask: ((mask > 10) & (mask < 245)).sum()  # noqa: E731
    assert between(hard) == 0 and between(soft) > 1000


def test_webp_transparent(astronaut_jpg: Path, run) -> None:
    assert run(astronaut_jpg, "--format", "webp").exit_code == 0
    assert load(astronaut_jpg.with_name("astronaut_nobg.webp")).shape == (512, 512, 4)


def test_bg_fit_contain_letterboxes(astronaut_jpg: Path, tmp_path: Path, run) -> None:
    wide = save(np.full((100, 400, 3), 255, np.uint8), tmp_path / "wide.png")
    assert run(astronaut_jpg, "--bg", wide, "--bg-fit", "contain", "--format", "png").exit_code == 0
    output = load(astronaut_jpg.with_name("astronaut_nobg.png")).astype(int)
    background = ~_person_mask(astronaut_jpg.parent, run)
    bars = np.zeros_like(background)
    bars[:185], bars[327:] = True, True  # 400x100 into 512x512: the picture covers rows 192-319
    picture = np.zeros_like(background)
    picture[200:312] = True
    assert output[bars & background].mean() < 20
    assert output[picture & background].mean() > 220


def test_output_dir_and_suffix(astronaut_jpg: Path, tmp_path: Path, run) -> None:
    out = tmp_path / "out"
    assert run(astronaut_jpg, "-o", out, "--suffix", "_cut").exit_code == 0
    assert (out / "astronaut_cut.png").is_file()
    assert not astronaut_jpg.with_name("astronaut_cut.png").exists()


def test_existing_output_is_skipped_unless_overwrite(astronaut_jpg: Path, run) -> None:
    output = astronaut_jpg.with_name("astronaut_nobg.png")
    output.write_bytes(b"an older result")
    result = run(astronaut_jpg)
    assert result.exit_code == 0 and "skipped" in result.stderr and "--overwrite" in result.stderr
    assert output.read_bytes() == b"an older result"
    assert run(astronaut_jpg, "--overwrite").exit_code == 0
    assert load(output).shape == (512, 512, 4)


def test_a_folder_of_images_with_a_bad_file(tmp_path: Path, astronaut, chelsea, run) -> None:
    shots = tmp_path / "shots"
    (shots / "sub").mkdir(parents=True)
    save(astronaut, shots / "a.jpg")
    save(chelsea, shots / "sub" / "b.png")
    (shots / "broken.jpg").write_text("not a picture")
    (shots / "readme.txt").write_text("hello")
    before = {path: path.read_bytes() for path in shots.rglob("*") if path.is_file()}
    result = run(shots, "-r")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert (shots / "a_nobg.png").is_file() and (shots / "sub" / "b_nobg.png").is_file()
    assert not list(shots.rglob("broken_nobg*")) and not list(shots.rglob(".*.part"))
    assert all(path.read_bytes() == content for path, content in before.items())
    assert "2 done, 0 skipped, 1 failed, 1 not images" in result.stderr


def test_an_input_is_never_overwritten(tmp_path: Path, astronaut, run) -> None:
    photo = save(astronaut, tmp_path / "photo.png")
    content = photo.read_bytes()
    result = run(photo, "--suffix", "", "-o", tmp_path)
    assert result.exit_code == 1 and "would overwrite an input" in result.stderr
    assert photo.read_bytes() == content


def test_two_inputs_for_one_output(tmp_path: Path, astronaut, run) -> None:
    save(astronaut, tmp_path / "photo.jpg")
    save(astronaut, tmp_path / "photo.png")
    result = run(tmp_path / "photo.jpg", tmp_path / "photo.png")
    assert result.exit_code == 1 and "also the output of" in result.stderr
    assert (tmp_path / "photo_nobg.png").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-m", "nosuchmodel"], "unknown model 'nosuchmodel'"),
        (["-m", "missing/model.tflite"], "model file not found"),
        (["--keep", "dog"], "unknown label 'dog' for model 'selfie'; valid labels: selfie"),
        (["--blur", "45", "--desaturate"], "choose one background at a time, got --blur and --desaturate"),
        (["--bg-color", "notacolour"], "'notacolour' is not a colour"),
        (["--bg-color", "0,300,0"], "R,G,B"),
        (["--threshold", "1.5"], "--threshold"),
        (["--bg-fit", "contain"], "--bg-fit applies only with --bg"),
        (["--format", "jpg"], "cannot hold transparency"),
        (["--bg", "NOFILE.png"], "NOFILE.png: no such file"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(astronaut_jpg: Path, run, arguments, message) -> None:
    result = run(astronaut_jpg, *arguments)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not astronaut_jpg.with_name("astronaut_nobg.png").exists()


def test_unreadable_background(astronaut_jpg: Path, tmp_path: Path, run) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = run(astronaut_jpg, "--bg", corrupt)
    assert result.exit_code == 2 and "corrupt.png" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_input_fails_the_run_but_not_the_batch(astronaut_jpg: Path, run) -> None:
    result = run(astronaut_jpg.with_name("ghost.jpg"), astronaut_jpg)
    assert result.exit_code == 1 and "ghost.jpg: no such file" in result.stderr
    assert astronaut_jpg.with_name("astronaut_nobg.png").is_file()


def test_list_models_shows_where_each_file_is(run) -> None:
    result = run("--list-models")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) >= {"selfie", "selfie-landscape", "hair", "multiclass", "deeplab", "deeplab-onnx"}
    assert "BGREMOVE_MODEL_DIR" in lines["selfie"] and "yes" in lines["selfie"]


def test_hair_model_marks_the_astronauts_hair(astronaut_jpg: Path, run) -> None:
    model_file("hair_segmenter.tflite")
    assert run(astronaut_jpg, "-m", "hair", "--mask-only").exit_code == 0
    hair = load(astronaut_jpg.with_name("astronaut_nobg.png")) > 127
    assert 0.01 < hair.mean() < 0.2
    rows, columns = np.nonzero(hair)
    assert rows.mean() < 200 and 120 < columns.mean() < 300  # the hair is on her head, top middle
    assert hair[:60].mean() > hair[300:].mean()


def test_deeplab_keeps_the_cat_and_no_person(chelsea_jpg: Path, run) -> None:
    model_file("deeplab_v3.tflite")
    assert run(chelsea_jpg, "-m", "deeplab", "--keep", "cat", "--mask-only", "--suffix", "_cat").exit_code == 0
    assert run(chelsea_jpg, "-m", "deeplab", "--keep", "person", "--mask-only", "--suffix", "_person").exit_code == 0
    cat = load(chelsea_jpg.with_name("chelsea_cat.png")) > 127
    person = load(chelsea_jpg.with_name("chelsea_person.png")) > 127
    assert cat.mean() > 0.5 and person.mean() < 0.02


def test_deeplab_onnx_keeps_the_cat(chelsea_jpg: Path, run) -> None:
    model_file("deeplab_v3_1_default_1.onnx")
    result = run(chelsea_jpg, "-m", "deeplab-onnx", "--keep", "cat", "--mask-only", "-v")
    assert result.exit_code == 0 and "CPUExecutionProvider" in result.stderr
    assert (load(chelsea_jpg.with_name("chelsea_nobg.png")) > 127).mean() > 0.5


def test_portraits_mean_iou_with_the_selfie_model(tmp_path: Path, run) -> None:
    folder = data_folder("portrait_shen2016")
    out = tmp_path / "masks"
    result = run(folder / "images", "--mask-only", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    scores = []
    for truth_path in sorted((folder / "masks").glob("*.png")):
        predicted = load(out / f"{truth_path.stem}_nobg.png") > 127
        scores.append(iou(predicted, load(truth_path) > 127))
    print(f"portrait_shen2016: {len(scores)} images, mean IoU {np.mean(scores):.3f}")
    assert len(scores) >= 90 and np.mean(scores) >= 0.95


def test_exif_rotated_photo_mask_lines_up_with_the_display_orientation(tmp_path: Path, run) -> None:
    folder = data_folder("difficult_inputs")
    photo = folder / "derived_exif6_person_ccp0001.jpg"
    assert run(photo, "--mask-only", "-o", tmp_path).exit_code == 0
    mask = load(tmp_path / "derived_exif6_person_ccp0001_nobg.png") > 127
    truth = load(folder / "derived_exif6_person_ccp0001_mask_display_orientation.png") > 127
    assert mask.shape == truth.shape and iou(mask, truth) > 0.8


def test_bgremove_as_a_real_process(astronaut_jpg: Path, starfield: Path) -> None:
    environment = {**os.environ, "BGREMOVE_MODEL_DIR": str(model_file("selfie_segmenter.tflite").parent)}
    completed = subprocess.run(
        [sys.executable, "-m", "bgremove", str(astronaut_jpg), "--bg", str(starfield)],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.strip() .startswith("bgremove: 1 done") and completed.stdout == ""
    assert "XNNPACK" not in completed.stderr and "W0000" not in completed.stderr
    assert load(astronaut_jpg.with_name("astronaut_nobg.jpg")).shape == (512, 512, 3)


_COMMAND = """
import atexit, sys, threading, time
atexit.register(lambda: print("teardown ran", file=sys.stderr))
if sys.argv[1] == "thread":  # a thread that is not a daemon and outlives the wait: Python's own exit
    threading.Thread(target=time.sleep, args=(5,)).start()
if sys.argv[1] == "short":  # one that ends within the wait: bgremove waits for it, then ends its own way
    threading.Thread(target=time.sleep, args=(0.3,)).start()
sys.argv[:2] = ["bgremove"]
from bgremove.cli import run
run()
"""


@pytest.mark.parametrize(("arguments", "code"), [(["IN"], 0), (["IN", "missing.jpg"], 1), (["--nope"], 2)])
def test_the_command_ends_without_pythons_teardown_and_keeps_its_exit_code(astronaut_jpg: Path, arguments,
                                                                           code: int) -> None:
    environment = {**os.environ, "BGREMOVE_MODEL_DIR": str(model_file("selfie_segmenter.tflite").parent)}
    arguments = [str(astronaut_jpg) if argument == "IN" else argument for argument in arguments]
    for mode in ("plain", "short", "thread") if code == 0 else ("plain",):
        completed = subprocess.run([sys.executable, "-c", _COMMAND, mode, *arguments, "--overwrite"],
                                   capture_output=True, text=True, env=environment, timeout=120)
        assert completed.returncode == code, completed.stderr
        assert ("teardown ran" in completed.stderr) == (mode == "thread"), completed.stderr
        if code == 0:
            assert completed.stderr.startswith("bgremove: 1 done")  # flushed before the end
            assert load(astronaut_jpg.with_name("astronaut_nobg.png")).shape == (512, 512, 4)


def _run_on_a_terminal(arguments: list[str]) -> str:
    """Run bgremove with stderr on a pseudo-terminal, as a user at a shell sees it."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns
    environment = {**os.environ, "BGREMOVE_MODEL_DIR": str(model_file("selfie_segmenter.tflite").parent)}
    process = subprocess.Popen([sys.executable, "-m", "bgremove", *arguments], stderr=follower,
                               stdout=subprocess.DEVNULL, env=environment)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_and_not_with_quiet(tmp_path: Path, astronaut) -> None:
    for name in ("a", "b"):
        save(astronaut, tmp_path / f"{name}.png")
    shown = _run_on_a_terminal([str(tmp_path)])
    assert "bgremove: 100%" in shown and "2/2" in shown and "2 done" in shown
    quiet = _run_on_a_terminal([str(tmp_path), "-q", "--overwrite"])
    assert "%" not in quiet and quiet.strip() == ""
