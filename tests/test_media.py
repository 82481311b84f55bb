"""Reading images by content (orientation, bit depth, alpha), output names, atomic writes, input lists."""

from __future__ import annotations

import io
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from data_paths import data_folder
from helpers import load, save
from hypothesis import given, settings
from hypothesis import strategies as st

from bgremove.config import CompositeMode, OutputConfig
from bgremove.errors import OutputError, UnsupportedMedia
from bgremove.media import (
    _pillow_image,
    atomic_output,
    decode_image,
    encode_image,
    find_inputs,
    output_extension,
    output_format,
    output_path,
    probe_image,
    read_image,
    remove_stale_temporaries,
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


def test_temporary_names_carry_the_writer(tmp_path: Path) -> None:
    import os
    import socket

    with atomic_output(tmp_path / "photo_nobg.png") as temporary:
        host = socket.gethostname().split(".")[0]
        assert temporary.name.startswith(f".photo_nobg.png.{os.getpid()}-") and temporary.name.endswith(".part")
        assert host.replace("_", "-")[:10] in temporary.name
        temporary.write_bytes(b"x")


def test_only_stale_temporaries_of_our_outputs_are_removed(tmp_path: Path) -> None:
    import os
    import subprocess

    from bgremove.media import _writer_tag

    finished = subprocess.Popen(["true"])
    finished.wait()  # a PID that no longer runs
    host = _writer_tag().split("-", 1)[1]
    stale = tmp_path / f".a_nobg.png.{finished.pid}-{host}.k2x9q1.part"
    live = tmp_path / f".b_nobg.png.{os.getpid()}-{host}.abc_12.part"
    elsewhere = tmp_path / f".a_nobg.png.{finished.pid}-another-host.k2x9q1.part"
    unrelated = tmp_path / f".c_nobg.png.{finished.pid}-{host}.k2x9q1.part"  # not an output of this run
    old_style = tmp_path / ".a_nobg.png.k2x9q1.part"
    for path in (stale, live, elsewhere, unrelated, old_style):
        path.write_bytes(b"half a picture")
    removed = remove_stale_temporaries([tmp_path / "a_nobg.png", tmp_path / "b_nobg.png", tmp_path / "no" / "x.png"])
    assert removed == [stale]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in (live, elsewhere, unrelated, old_style))


def test_image_bytes_round_trip(astronaut: np.ndarray) -> None:
    encoded = encode_image(astronaut, "PNG")
    frame, info = decode_image(encoded)
    assert info.format == "PNG" and np.array_equal(frame.rgb, astronaut)
    with pytest.raises(UnsupportedMedia, match="<stdin>: empty"):
        decode_image(b"")
    with pytest.raises(UnsupportedMedia, match="pipe: not an image"):
        decode_image(b"hello", "pipe")


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


def test_webp_outputs_use_libwebps_method_2_at_quality_90(astronaut: np.ndarray) -> None:
    """WebP is encoded with method 2 (2.5x quicker than Pillow's default 4, files within a few percent):
    the bytes are Pillow's at those settings, and the picture stays close to the original."""
    from PIL import Image

    encoded = encode_image(astronaut, "WEBP")
    expected, slower = io.BytesIO(), io.BytesIO()
    Image.fromarray(astronaut).save(expected, "WEBP", quality=90, method=2)
    Image.fromarray(astronaut).save(slower, "WEBP", quality=90, method=4)
    assert encoded == expected.getvalue() != slower.getvalue()
    assert len(encoded) < 1.05 * len(slower.getvalue())
    decoded = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((decoded - astronaut) ** 2))
    assert psnr > 36.0


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("quality", [95, 90, 89, 60])
def test_jpeg_bytes_are_pillows_bytes(astronaut: np.ndarray, quality: int, gray: bool) -> None:
    """JPEG is encoded by OpenCV for its speed, and must write what Pillow writes with the same options (both are
    libjpeg-turbo): the same file, 4:4:4 at quality 90 and over, 4:2:0 below."""
    pixels = np.ascontiguousarray(astronaut[..., 1]) if gray else astronaut
    image, options = _pillow_image(pixels, "JPEG", quality)
    expected = io.BytesIO()
    image.save(expected, format="JPEG", **options)
    assert encode_image(pixels, "JPEG", jpeg_quality=quality) == expected.getvalue()
    assert options["subsampling"] == (0 if quality >= 90 else 2)


@pytest.mark.parametrize(("options", "expected"), [
    ({"format": "JPEG", "quality": 95}, "4:2:0"),  # Pillow's default, and nearly every camera's
    ({"format": "JPEG", "quality": 95, "subsampling": 0}, "4:4:4"),
    ({"format": "JPEG", "quality": 95, "subsampling": 1}, None),  # 4:2:2, which a quarter turn makes 4:4:0
    ({"format": "PNG"}, None),
])
def test_reading_reports_a_colour_jpegs_chroma_layout(tmp_path: Path, astronaut: np.ndarray, options: dict,
                                                      expected: str | None) -> None:
    path = save(astronaut, tmp_path / "input", **options)
    assert probe_image(path).subsampling == expected
    assert read_image(path)[1].subsampling == expected
    assert decode_image(path.read_bytes())[1].subsampling == expected
    gray = save(np.ascontiguousarray(astronaut[..., 0]), tmp_path / "gray.jpg", quality=95)
    assert probe_image(gray).subsampling is None


@pytest.mark.parametrize(("subsampling", "quality", "code"), [
    ("4:2:0", 95, 2), ("4:4:4", 95, 0), (None, 95, 0), ("4:4:4", 80, 0), (None, 80, 2),
])
def test_a_jpeg_output_keeps_the_jpeg_inputs_chroma_layout(astronaut: np.ndarray, subsampling: str | None,
                                                           quality: int, code: int) -> None:
    """A JPEG input's own layout stands whatever the quality; other inputs get 4:4:4 at 90 and over. OpenCV still
    writes Pillow's bytes."""
    from PIL import Image, JpegImagePlugin

    encoded = encode_image(astronaut, "JPEG", jpeg_quality=quality, subsampling=subsampling)
    image, options = _pillow_image(astronaut, "JPEG", quality, subsampling)
    expected = io.BytesIO()
    image.save(expected, format="JPEG", **options)
    assert encoded == expected.getvalue()
    with Image.open(io.BytesIO(encoded)) as written:
        assert JpegImagePlugin.get_sampling(written) == code


@pytest.mark.parametrize("fmt, quality", [("JPEG", 95), ("JPEG", 80), ("WEBP", 95), ("GIF", 95)])
def test_a_written_file_holds_the_bytes_encode_image_makes(tmp_path: Path, astronaut: np.ndarray, fmt: str,
                                                           quality: int) -> None:
    """``write_image`` has Pillow encode WebP and GIF into the file itself (its encoders release the GIL only there),
    and a pipe gets ``encode_image``'s bytes: both are one encoding, with the same options."""
    write_image(tmp_path / "out", astronaut, fmt, jpeg_quality=quality)
    written = (tmp_path / "out").read_bytes()
    assert written == encode_image(astronaut, fmt, jpeg_quality=quality)
    frame, info = decode_image(written)
    assert info.format == fmt and frame.rgb.shape == astronaut.shape
    if fmt == "JPEG":  # 4:4:4 at quality 90 and over, 4:2:0 below: the chroma of a 4:2:0 file is smoother
        error = np.abs(frame.rgb.astype(int) - astronaut).mean()
        assert error < (2.0 if quality >= 90 else 4.0)
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no temporary left


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


def test_find_inputs_mirrors_from_the_common_folder(tmp_path: Path, astronaut: np.ndarray) -> None:
    for place in ("x/a/photo.jpg", "x/b/photo.jpg", "x/b/c/d.png"):
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        save(astronaut, tmp_path / place)
    files, _ = find_inputs([tmp_path / "x/a/photo.jpg", tmp_path / "x/b/photo.jpg"])
    assert {item.root for item in files} == {tmp_path / "x"}
    folders, _ = find_inputs([tmp_path / "x/a", tmp_path / "x/b"], recursive=True)
    assert {item.root for item in folders} == {tmp_path / "x"}
    single, _ = find_inputs([tmp_path / "x/b"], recursive=True)
    assert {item.root for item in single} == {tmp_path / "x/b"}
    pattern, _ = find_inputs([tmp_path / "x/**/*.png"])
    assert [(item.path, item.root, item.argument) for item in pattern] == [
        (tmp_path / "x/b/c/d.png", tmp_path / "x/b/c", tmp_path / "x/**/*.png")]
    nothing, _ = find_inputs([tmp_path / "x/*.gif"])
    assert [item.path for item in nothing] == [tmp_path / "x/*.gif"]
    with pytest.raises(UnsupportedMedia, match="no file matches this pattern"):
        read_image(tmp_path / "x/*.gif")


def test_outputs_get_the_usual_file_mode(tmp_path: Path, astronaut: np.ndarray) -> None:
    import os

    previous = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", astronaut, "PNG")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_png_round_trips_every_shape_and_channel_count(data) -> None:
    """Our own PNG writer (Up filter, ISA-L deflate) gives back the exact pixels, to Pillow and OpenCV."""
    import cv2
    from PIL import Image

    height, width = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    channels = data.draw(st.sampled_from([None, 3, 4]))
    shape = (height, width) if channels is None else (height, width, channels)
    pixels = data.draw(hnp.arrays(np.uint8, shape))
    encoded = encode_image(pixels, "PNG")
    with Image.open(io.BytesIO(encoded)) as image:
        image.verify()
    with Image.open(io.BytesIO(encoded)) as image:
        assert image.mode == {None: "L", 3: "RGB", 4: "RGBA"}[channels]
        assert np.array_equal(np.asarray(image), pixels)
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    if channels:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(decoded, pixels)


def test_a_real_cut_out_png_is_smaller_than_libpngs_at_level_1(astronaut: np.ndarray) -> None:
    import cv2

    yy, xx = np.mgrid[0 : astronaut.shape[0], 0 : astronaut.shape[1]]
    alpha = np.where(np.hypot(yy - 220, xx - 250) < 180, 255, 0).astype(np.uint8)
    rgba = np.dstack([astronaut, alpha])
    ours = encode_image(rgba, "PNG")
    _, libpng = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA),
                             [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    assert len(ours) < len(libpng)


def _jpeg(rgb: np.ndarray, *, orientation: int = 1, mode: str = "RGB", tail: bytes = b"") -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue() + tail


def _pillow_pixels(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.mark.parametrize("orientation", range(10))  # (0 and 9 are not orientations: no turn)
def test_jpegs_decoded_by_simplejpeg_give_pillows_upright_pixels(astronaut: np.ndarray, orientation: int) -> None:
    from PIL import Image

    from bgremove.media import _decode_complete_jpeg

    data = _jpeg(astronaut[:120, :200], orientation=orientation)
    with Image.open(io.BytesIO(data)) as image:
        assert _decode_complete_jpeg(image, io.BytesIO(data)) is not None  # the fast path was taken
    frame, info = decode_image(data)
    assert info.format == "JPEG" and np.array_equal(frame.rgb, _pillow_pixels(data))


def test_a_jpegs_xmp_orientation_turns_it_as_pillow_does(astronaut: np.ndarray) -> None:
    # (no EXIF, only XMP's tiff:Orientation, which Pillow's getexif reads; OpenCV's decoder did not)
    from PIL import Image

    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    buffer = io.BytesIO()
    Image.fromarray(astronaut[:100, :160]).save(buffer, "JPEG", quality=90, xmp=xmp)
    frame, info = decode_image(buffer.getvalue())
    assert (info.width, info.height) == (100, 160)
    assert np.array_equal(frame.rgb, _pillow_pixels(buffer.getvalue()))


@pytest.mark.parametrize(("mode", "tail", "fast"), [
    ("L", b"", True),
    ("RGB", b"\0" * 100, True),  # zero padding after the end marker
    ("RGB", b"trailing bytes of another format", False),  # left to Pillow
    ("CMYK", b"", False),
])
def test_other_jpegs_read_as_pillow_reads_them(astronaut: np.ndarray, mode: str, tail: bytes, fast: bool) -> None:
    from PIL import Image

    from bgremove.media import _decode_complete_jpeg

    data = _jpeg(astronaut[:64, :80], mode=mode, tail=tail)
    with Image.open(io.BytesIO(data)) as image:
        assert (_decode_complete_jpeg(image, io.BytesIO(data)) is not None) is fast
    frame, _ = decode_image(data)
    assert np.array_equal(frame.rgb, _pillow_pixels(data))


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9, 0.999])
def test_a_jpeg_cut_short_anywhere_is_reported_truncated(astronaut: np.ndarray, fraction: float) -> None:
    data = _jpeg(astronaut)
    with pytest.raises(UnsupportedMedia, match="truncated"):
        decode_image(data[: int(len(data) * fraction)], "cut.jpg")


def _webp(pixels: np.ndarray, *, lossless: bool = False, orientation: int = 1, frames: int = 1) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    images = [Image.fromarray(np.roll(pixels, 17 * index, axis=1)) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "WEBP", lossless=lossless, quality=80, exif=exif.tobytes(),
                   save_all=frames > 1, append_images=images[1:])
    return buffer.getvalue()


def _pillow_rgba(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))


@pytest.mark.parametrize("lossless", [False, True])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_still_webps_are_decoded_by_opencv_as_pillow_decodes_them(
    astronaut: np.ndarray, lossless: bool, with_alpha: bool
) -> None:
    from PIL import Image

    from bgremove.media import _decode_still_webp

    pixels = astronaut[:120, :200]
    if with_alpha:  # every alpha level, over real colours
        pixels = np.dstack([pixels, np.resize(np.arange(256, dtype=np.uint8), (120, 200))])
    data = _webp(pixels, lossless=lossless)
    with Image.open(io.BytesIO(data)) as image:
        assert _decode_still_webp(image, io.BytesIO(data)) is not None  # the fast path was taken
    frame, info = decode_image(data)
    expected = _pillow_rgba(data)
    assert info.format == "WEBP" and frame.rgb.flags.c_contiguous
    assert np.array_equal(frame.rgb, expected[..., :3])
    if with_alpha:
        assert frame.alpha is not None and np.array_equal(frame.alpha, expected[..., 3])
    else:
        assert frame.alpha is None


@pytest.mark.parametrize(("orientation", "frames"), [(6, 1), (3, 1), (1, 2)])
def test_turned_and_animated_webps_are_left_to_pillow(astronaut: np.ndarray, orientation: int, frames: int) -> None:
    from PIL import Image

    from bgremove.media import _decode_still_webp

    data = _webp(astronaut[:120, :200], orientation=orientation, frames=frames)
    with Image.open(io.BytesIO(data)) as image:
        assert _decode_still_webp(image, io.BytesIO(data)) is None
    frame, _ = decode_image(data)
    assert np.array_equal(frame.rgb, _pillow_rgba(data)[..., :3])  # upright; the first frame
    if orientation == 6:
        assert frame.rgb.shape == (200, 120, 3)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animated_image_says_only_its_first_frame_is_processed(tmp_path: Path, astronaut: np.ndarray, fmt: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from PIL import Image

    frames = [Image.fromarray(np.roll(astronaut, 40 * index, axis=1)) for index in range(3)]
    animated, still = tmp_path / f"moving.{fmt.lower()}", tmp_path / f"still.{fmt.lower()}"
    frames[0].save(animated, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(still, format=fmt)
    with caplog.at_level("WARNING", logger="bgremove"):
        frame, _ = read_image(animated)
        assert [record.getMessage() for record in caplog.records] == [
            f"{animated}: an animated {fmt} of 3 frames; only its first frame is processed "
            "(to process them all, convert it to a video, e.g. mp4)"]
        caplog.clear()
        first, _ = read_image(still)
        assert caplog.records == []
    assert np.abs(frame.rgb.astype(int) - first.rgb).mean() < 3  # the first frame


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.999])
def test_a_webp_cut_short_is_refused(astronaut: np.ndarray, fraction: float, tmp_path: Path) -> None:
    data = _webp(astronaut)
    path = tmp_path / "cut.webp"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UnsupportedMedia, match="cut.webp"):
        read_image(path)


@pytest.mark.parametrize(("content", "kind", "message"), [
    ("png", "image", None),  # a picture named like a video is still a picture
    ("text", None, "not an image or video bgremove can read"),  # reported as the video it claims to be
])
def test_a_file_named_like_a_video_is_tried_as_a_video_first(
    tmp_path: Path, astronaut: np.ndarray, content: str, kind: str | None, message: str | None
) -> None:
    from bgremove.pipeline import probe_media

    path = tmp_path / "clip.mp4"
    if content == "png":
        path.write_bytes(encode_image(astronaut, "PNG"))
        info = probe_media(path)
        assert info.format == "PNG" and (info.width, info.height) == (512, 512)
    else:
        path.write_text("not a video at all\n")
        with pytest.raises(UnsupportedMedia, match=message):
            probe_media(path)


def test_probing_a_video_does_not_load_pillow() -> None:
    import subprocess
    import sys

    from data_paths import DATA_DIR

    clip = DATA_DIR / "video_davis2016" / "videos" / "libby.mp4"
    if not clip.is_file():
        pytest.skip(f"test data file {clip} is absent (set BGREMOVE_DATA_DIR to the shared data folder)")
    script = ("import sys; from pathlib import Path; from bgremove.pipeline import probe_media; "
              f"info = probe_media(Path({str(clip)!r})); assert info.frames > 0; "
              "assert 'PIL.Image' not in sys.modules, 'Pillow loaded'")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
