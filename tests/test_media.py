"""Reading images by content (orientation, bit depth, alpha), output names, atomic writes, input lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_paths import data_folder
from helpers import load, save

from bgremove.config import CompositeMode, OutputConfig
from bgremove.errors import OutputError, UnsupportedMedia
from bgremove.media import (
    atomic_output,
    find_inputs,
    output_extension,
    output_format,
    output_path,
    read_image,
    write_image,
)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("kind", ["Landscape", "Portrait"])
def test_exif_orientation_is_applied(kind: str, orientation: int) -> None:
    folder = data_folder("difficult_inputs")
    frame, _ = read_image(folder / f"exif_{kind}_{orientation}.jpg")
    upright, _ = read_image(folder / f"exif_{kind}_1.jpg")
    assert frame.rgb.shape == upright.rgb.shape
    # the same picture once turned upright: close to the unrotated one, unlike a wrong rotation
    difference = np.abs(frame.rgb.astype(int) - upright.rgb.astype(int)).mean()
    assert difference < 12, difference


@pytest.mark.parametrize(
    ("name", "has_alpha"),
    [
        ("derived_16bit_gray_camera.png", False),
        ("derived_16bit_rgb_astronaut.png", False),
        ("real_grayscale_person_camera.png", False),
        ("rgba_cutout_girl-1.png", True),
        ("png_with_jpg_extension_rgba_plants-1.jpg", True),
    ],
)
def test_difficult_images_become_8_bit_rgb(name: str, has_alpha: bool) -> None:
    frame, info = read_image(data_folder("difficult_inputs") / name)
    assert frame.rgb.dtype == np.uint8 and frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3
    assert frame.rgb.flags.c_contiguous
    assert (frame.alpha is not None) == has_alpha
    assert frame.rgb.std() > 10  # real content, not a flat image from a bad conversion


def test_16_bit_gray_uses_the_whole_range() -> None:
    frame, _ = read_image(data_folder("difficult_inputs") / "derived_16bit_gray_camera.png")
    assert frame.rgb.max() > 200 and frame.rgb.min() < 50


def test_content_decides_not_the_extension() -> None:
    _, info = read_image(data_folder("difficult_inputs") / "png_with_jpg_extension_rgba_plants-1.jpg")
    assert info.format == "PNG"


def test_cmyk_jpeg(tmp_path: Path, astronaut: np.ndarray) -> None:
    from PIL import Image

    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(path)
    frame, info = read_image(path)
    assert info.format == "JPEG" and frame.rgb.shape == astronaut.shape
    assert np.abs(frame.rgb.astype(int) - astronaut.astype(int)).mean() < 20


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path.write_bytes(b""), "empty file"),
        (lambda path: path.write_text("hello, I am not a picture\n"), "not an image"),
        (lambda path: None, "no such file"),
    ],
)
def test_unreadable_inputs_raise_one_line_errors(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(UnsupportedMedia) as caught:
        read_image(path)
    assert str(path) in str(caught.value) and reason in str(caught.value) and "\n" not in str(caught.value)


def test_truncated_jpeg_is_refused() -> None:
    with pytest.raises(UnsupportedMedia, match="corrupt_truncated.jpg"):
        read_image(data_folder("difficult_inputs") / "corrupt_truncated.jpg")


@pytest.mark.parametrize(
    ("mode", "input_format", "requested", "expected"),
    [
        (CompositeMode.TRANSPARENT, "JPEG", None, "PNG"),
        (CompositeMode.TRANSPARENT, "JPEG", "webp", "WEBP"),
        (CompositeMode.MASK, "JPEG", None, "PNG"),
        (CompositeMode.IMAGE, "JPEG", None, "JPEG"),
        (CompositeMode.BLUR, "MPO", None, "JPEG"),
        (CompositeMode.COLOR, "PNG", None, "PNG"),
        (CompositeMode.COLOR, "ICO", None, "PNG"),
        (CompositeMode.COLOR, "PNG", "jpg", "JPEG"),
    ],
)
def test_output_format(mode, input_format, requested, expected) -> None:
    assert output_format(mode, input_format, requested) == expected


def test_transparency_in_jpeg_is_refused() -> None:
    with pytest.raises(OutputError, match="cannot hold transparency"):
        output_format(CompositeMode.TRANSPARENT, "JPEG", "jpg")


def test_output_names(tmp_path: Path) -> None:
    photo = tmp_path / "shots" / "a" / "Photo.JPG"
    assert output_extension("JPEG", photo) == ".JPG"
    assert output_extension("PNG", photo) == ".png"
    assert output_path(photo, ".png", OutputConfig()) == photo.with_name("Photo_nobg.png")
    assert output_path(photo, ".png", OutputConfig(suffix="_cut")) == photo.with_name("Photo_cut.png")
    mirrored = output_path(photo, ".png", OutputConfig(output_dir=tmp_path / "out"), root=tmp_path / "shots")
    assert mirrored == tmp_path / "out" / "a" / "Photo_nobg.png"


def test_atomic_write_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_an_empty_result(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="nothing was written"), atomic_output(tmp_path / "out.png"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_write_image_round_trip(tmp_path: Path, astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    write_image(tmp_path / "a.png", rgba, "PNG")
    assert np.array_equal(load(tmp_path / "a.png"), rgba)
    write_image(tmp_path / "a.webp", rgba, "WEBP")
    assert load(tmp_path / "a.webp").shape == rgba.shape
    assert [path.name for path in sorted(tmp_path.iterdir())] == ["a.png", "a.webp"]


def test_unwritable_place_is_an_output_error(tmp_path: Path, astronaut: np.ndarray) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")  # fails for root too, unlike permissions
    with pytest.raises(OutputError, match="cannot write"):
        write_image(blocker / "a.png", astronaut, "PNG")
    assert blocker.read_text() == "a file where a folder should be"


def test_find_inputs_in_folders(tmp_path: Path, astronaut: np.ndarray) -> None:
    save(astronaut, tmp_path / "b.jpg")
    save(astronaut, tmp_path / "a.png")
    save(astronaut, tmp_path / "a_nobg.png")  # an earlier output
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    save(astronaut, tmp_path / "sub" / "c.jpg")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    flat, skipped = find_inputs([tmp_path], skip_suffix="_nobg")
    assert [item.path.name for item in flat] == ["a.png", "b.jpg"]
    assert [path.name for path in skipped] == ["notes.txt"]
    deep, _ = find_inputs([tmp_path], recursive=True, skip_suffix="_nobg")
    assert [item.path.name for item in deep] == ["a.png", "b.jpg", "c.jpg"]
    assert all(item.root == tmp_path for item in deep)


def test_outputs_get_the_usual_file_mode(tmp_path: Path, astronaut: np.ndarray) -> None:
    import os

    previous = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", astronaut, "PNG")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
