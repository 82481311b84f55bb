"""Reading and writing images; output naming; atomic writes; finding the inputs in folders.

Only this module and ``video.py`` (its video side, which needs PyAV) know file formats. A file's
content, not its extension, decides how it is read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .config import CompositeMode, OutputConfig
from .errors import OutputError, UnsupportedMedia
from .types import Frame, RGBImage

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm"}
)

# Pillow format name -> (canonical extension, other extensions that mean the same format)
_WRITABLE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "TIFF": (".tif", ".tiff"),
    "GIF": (".gif",),
    "PPM": (".ppm", ".pgm", ".pnm"),
}
# Folders are scanned for these; a file named on the command line is read by content whatever its name.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv",
     ".3gp", ".ogv", ".mxf"}
)
_FORMAT_ALIASES = {"MPO": "JPEG"}  # phone cameras' multi-picture JPEGs
_FORMAT_BY_OPTION = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an image says, without decoding it."""

    path: Path
    format: str  # Pillow's format name: JPEG, PNG, ...
    width: int
    height: int


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text or type(error).__name__


def probe_image(path: Path) -> ImageInfo:
    """Identify an image by its content; ``UnsupportedMedia`` when it is not one Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    _check_readable_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return ImageInfo(path=path, format=image.format or "", width=image.width, height=image.height)
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{path}: not an image bgremove can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedMedia(f"{path}: image too large to process safely ({_reason(error)})") from None
    except OSError as error:  # the header itself is cut short or damaged
        raise UnsupportedMedia(f"{path}: corrupt or truncated image ({_reason(error)})") from None


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise UnsupportedMedia(f"{path}: no such file")
    if path.is_dir():
        raise UnsupportedMedia(f"{path}: is a folder")
    if not os.access(path, os.R_OK):
        raise UnsupportedMedia(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"{path}: empty file (0 bytes)")


def _to_uint8(values: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Scale integer images of more than 8 bits (16-bit PNG, 32-bit 'I' mode) to 8 bits."""
    if values.dtype == np.uint8:
        return values
    if np.issubdtype(values.dtype, np.floating):
        return np.asarray(np.clip(values * (255.0 if values.max(initial=0) <= 1.0 else 1.0), 0, 255), dtype=np.uint8)
    top = 65535 if values.max(initial=0) > 255 else 255
    return np.asarray(np.clip(values.astype(np.float64) * (255.0 / top) + 0.5, 0, 255), dtype=np.uint8)


def read_image(path: Path) -> tuple[Frame, ImageInfo]:
    """Decode an image as RGB uint8 with its EXIF orientation applied.

    Grayscale, palette, CMYK and 16-bit images become 8-bit RGB; an alpha channel, if any, is kept in
    ``Frame.alpha``. Corrupt or truncated files raise ``UnsupportedMedia``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    info = probe_image(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                # in place: the default copies the whole picture even when it needs no turn
                ImageOps.exif_transpose(opened, in_place=True)
                rgb, alpha = _split_channels(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnsupportedMedia(f"{path}: corrupt or truncated image ({_reason(error)})") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedMedia(f"{path}: image too large to process safely ({_reason(error)})") from None
    return Frame(rgb=rgb, alpha=alpha), ImageInfo(path, info.format, rgb.shape[1], rgb.shape[0])


def _split_channels(image: object) -> tuple[RGBImage, npt.NDArray[np.uint8] | None]:
    from PIL import Image

    assert isinstance(image, Image.Image)
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = _to_uint8(np.asarray(image))
        return np.ascontiguousarray(np.dstack([gray, gray, gray])), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if mode in ("L", "1") and "transparency" in image.info:
        has_alpha = True
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    rgb = image if mode == "RGB" else image.convert("RGB")  # convert() copies even to the same mode
    return np.ascontiguousarray(np.asarray(rgb)), None


def read_background(path: Path) -> RGBImage:
    """A background image as RGB (its transparency, if any, over black)."""
    frame, _ = read_image(path)
    if frame.alpha is None:
        return frame.rgb
    weight = frame.alpha.astype(np.float32)[..., None] / 255.0
    return np.asarray(frame.rgb.astype(np.float32) * weight + 0.5, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------
# Output names


def output_format(mode: CompositeMode, input_format: str, requested: str | None) -> str:
    """The Pillow format an image output is written in.

    Transparent outputs are PNG (or WebP); masks PNG; opaque outputs keep the input's format unless
    ``--format`` says otherwise. Asking for transparency in a format without alpha is an error.
    """
    if requested is not None:
        chosen = _FORMAT_BY_OPTION.get(requested.lower())
        if chosen is None:
            raise OutputError(f"unknown image format '{requested}' (choose png, jpg or webp)")
        if mode is CompositeMode.TRANSPARENT and chosen not in _ALPHA_FORMATS:
            raise OutputError(f"{requested} cannot hold transparency; use --format png or webp")
        return chosen
    if mode is CompositeMode.TRANSPARENT or mode is CompositeMode.MASK:
        return "PNG"
    fmt = _FORMAT_ALIASES.get(input_format, input_format)
    return fmt if fmt in _WRITABLE_FORMATS else "PNG"


def output_extension(fmt: str, input_path: Path) -> str:
    """The input's own extension when it names ``fmt`` (keeps ``.JPG`` or ``.jpeg``), else the usual one."""
    extensions = _WRITABLE_FORMATS[fmt]
    return input_path.suffix if input_path.suffix.lower() in extensions else extensions[0]


def output_path(input_path: Path, extension: str, config: OutputConfig, root: Path | None = None) -> Path:
    """``<stem><suffix><ext>`` next to the input, or under ``--output-dir`` mirroring the input's
    place below ``root`` (the folder argument it was found in), so equal names never collide."""
    name = f"{input_path.stem}{config.suffix}{extension}"
    if config.output_dir is None:
        return input_path.with_name(name)
    relative_parent = Path()
    if root is not None:
        with contextlib.suppress(ValueError):
            relative_parent = input_path.parent.resolve().relative_to(root.resolve())
    target = config.output_dir / relative_parent / name
    if ".." in target.relative_to(config.output_dir).parts:
        raise OutputError(f"{input_path}: output {target} would fall outside {config.output_dir}")
    return target


# ---------------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only when the block succeeds.

    The temporary file is hidden (``.name.XXXX.part``) in the destination folder so the rename is
    atomic; on any failure, interruption included, it is removed and ``path`` is untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as error:
        raise OutputError(f"{path}: cannot write: {error.strerror or _reason(error)}") from None
    os.close(handle)
    temporary = Path(temporary_name)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600); outputs get the usual mode
    try:
        yield temporary
        if temporary.stat().st_size == 0:
            raise OutputError(f"{path}: nothing was written")
        os.replace(temporary, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot write: {error.strerror or _reason(error)}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@functools.cache
def _umask() -> int:
    """The process's umask, read once: os.umask can only be read by setting it, which is not
    thread-safe, so it is not done per file."""
    current = os.umask(0)
    os.umask(current)
    return current


def _encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of RGB, RGBA or gray pixels: zlib level 1 with the Up filter on every row.

    Pillow's level 6 (adaptive filters) took 3.0 s for a 12 MP RGBA cut-out; OpenCV's libpng with these
    settings takes 0.36 s for files about a fifth larger (11.7 MB instead of 9.7), the same size as
    OpenCV's own default (level 1, adaptive filters), which is slower. Lossless either way.
    """
    import cv2

    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels), [
        cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise OutputError(f"cannot encode a {pixels.shape} image as PNG")
    return encoded.tobytes()


def write_image(path: Path, pixels: npt.NDArray[np.uint8], fmt: str, *, jpeg_quality: int = 95) -> None:
    """Write RGB, RGBA or gray pixels atomically as ``fmt``."""
    from PIL import Image

    if fmt == "PNG":
        encoded = _encode_png(pixels)
        with atomic_output(path) as temporary:
            temporary.write_bytes(encoded)
        return
    image = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": jpeg_quality, "subsampling": 0 if jpeg_quality >= 90 else 2}
    elif fmt == "WEBP":
        options = {"quality": 90, "method": 4}
    elif fmt == "GIF":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE) if image.mode == "RGB" else image
    with atomic_output(path) as temporary:
        image.save(temporary, format=fmt, **options)


# ---------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class InputFile:
    """One file to process, with the folder argument it was found under (None for a file argument)."""

    path: Path
    root: Path | None = None


def find_inputs(
    arguments: Iterable[Path], *, recursive: bool = False, skip_suffix: str | None = None
) -> tuple[list[InputFile], list[Path]]:
    """Expand file and folder arguments into input files.

    A folder gives its image and video files (by extension; each is still read by content later), sorted, its
    subfolders too with ``recursive``; hidden files and our own outputs (names ending in
    ``skip_suffix``) are left out. A file argument is taken as it is, whatever its extension. Returns
    the inputs and the folder entries that were passed over because they are not media.
    """
    inputs: list[InputFile] = []
    skipped: list[Path] = []
    for argument in arguments:
        if not argument.is_dir():
            inputs.append(InputFile(argument))
            continue
        for path in _walk(argument, recursive):
            if path.suffix.lower() not in IMAGE_EXTENSIONS and path.suffix.lower() not in VIDEO_EXTENSIONS:
                skipped.append(path)
            elif not (skip_suffix and path.stem.endswith(skip_suffix)):
                inputs.append(InputFile(path, root=argument))
    return inputs, skipped


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()

    def visit(current: Path) -> Iterator[Path]:
        try:
            stat = current.stat()
        except OSError:
            return
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
            return
        seen.add((stat.st_dev, stat.st_ino))
        try:
            entries = sorted(current.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if recursive:
                    yield from visit(entry)
            elif entry.is_file():
                yield entry

    yield from visit(folder)
