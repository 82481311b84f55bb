"""Reading and writing images; output naming; atomic writes; finding the inputs in folders.

Only this module and ``video.py`` (its video side, which needs PyAV) know file formats. A file's
content, not its extension, decides how it is read.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import logging
import os
import re
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .config import CompositeMode, OutputConfig
from .errors import OutputError, UnsupportedMedia
from .types import Frame, RGBImage

if TYPE_CHECKING:
    from PIL import Image as PILImage

logger = logging.getLogger(__name__)

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
    # a colour JPEG's chroma subsampling, "4:4:4" or "4:2:0"; None for any other image
    subsampling: str | None = None


# Pillow's ``JpegImagePlugin.get_sampling`` codes of the layouts that a quarter turn leaves as they are
# (4:2:2 turned upright by its EXIF orientation would be 4:4:0)
_SUBSAMPLING_NAMES = {0: "4:4:4", 2: "4:2:0"}


def _subsampling(image: PILImage.Image) -> str | None:
    """The chroma subsampling of an opened colour JPEG, 4:4:4 or 4:2:0; None for other images and
    other layouts."""
    if image.format not in ("JPEG", "MPO") or image.mode != "RGB":
        return None
    from PIL import JpegImagePlugin

    return _SUBSAMPLING_NAMES.get(JpegImagePlugin.get_sampling(image))


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text or type(error).__name__


def probe_image(path: Path) -> ImageInfo:
    """Identify an image by its content; ``UnsupportedMedia`` when it is not one Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    check_readable_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return ImageInfo(path=path, format=image.format or "", width=image.width, height=image.height,
                                 subsampling=_subsampling(image))
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{path}: not an image bgremove can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedMedia(f"{path}: image too large to process safely ({_reason(error)})") from None
    except OSError as error:  # the header itself is cut short or damaged
        raise UnsupportedMedia(f"{path}: corrupt or truncated image ({_reason(error)})") from None


def check_readable_file(path: Path) -> None:
    """``UnsupportedMedia`` naming the reason when ``path`` is not a readable, non-empty file."""
    if not path.exists():
        if _is_pattern(str(path)):
            raise UnsupportedMedia(f"{path}: no file matches this pattern")
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
    info = probe_image(path)
    frame = _decode(path, path)
    return frame, ImageInfo(path, info.format, frame.width, frame.height, info.subsampling)


def decode_image(data: bytes, name: str = "<stdin>") -> tuple[Frame, ImageInfo]:
    """``read_image`` for an image held in memory (read from a pipe); ``name`` stands for it in errors."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UnsupportedMedia(f"{name}: empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, subsampling = image.format or "", _subsampling(image)
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{name}: not an image bgremove can read (unknown or corrupt format)") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedMedia(f"{name}: image too large to process safely ({_reason(error)})") from None
    except OSError as error:
        raise UnsupportedMedia(f"{name}: cannot read: {_reason(error)}") from None
    frame = _decode(io.BytesIO(data), name)
    return frame, ImageInfo(Path(name), fmt, frame.width, frame.height, subsampling)


def _decode(source: Path | io.BytesIO, name: object) -> Frame:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                rgb = _decode_complete_jpeg(opened, source)
                if rgb is not None:
                    return Frame(rgb=rgb)
                decoded = _decode_still_webp(opened, source)
                if decoded is not None:
                    return Frame(rgb=decoded[0], alpha=decoded[1])
                if getattr(opened, "is_animated", False) and opened.format != "MPO":
                    # (an MPO's further pictures are the same shot's preview or depth map, not frames)
                    logger.warning("%s: an animated %s of %d frames; only its first frame is processed "
                                   "(to process them all, convert it to a video, e.g. mp4)",
                                   name, opened.format, opened.n_frames)
                opened.load()
                # in place: the default copies the whole picture even when it needs no turn
                ImageOps.exif_transpose(opened, in_place=True)
                rgb, alpha = _split_channels(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnsupportedMedia(f"{name}: corrupt or truncated image ({_reason(error)})") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedMedia(f"{name}: image too large to process safely ({_reason(error)})") from None
    return Frame(rgb=rgb, alpha=alpha)


def _decode_complete_jpeg(image: object, source: Path | io.BytesIO) -> RGBImage | None:
    """A JPEG's RGB pixels decoded by simplejpeg and turned upright, or None where Pillow should decode
    it instead.

    simplejpeg, Pillow and OpenCV all decode with libjpeg-turbo and give the same pixels. simplejpeg
    goes through the TurboJPEG API straight into one RGB array without the GIL: a 12 MP photo in 44-64
    ms against OpenCV's 64-91 (which used to read them) and Pillow's 128-170, and two threads decode
    1.7 times as fast as one (OpenCV 1.5). Taken only for RGB and gray JPEGs whose data ends with the
    end-of-image marker (trailing zero bytes allowed): libjpeg decodes a cut-off file with a warning
    and gray rows, so anything else, CMYK and cut-off files included, goes to Pillow, which reports a
    truncated file as such. The picture is turned by Pillow's reading of its orientation (``getexif``,
    as ``ImageOps.exif_transpose`` turns it).
    """
    import simplejpeg
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.format != "JPEG" or image.mode not in ("RGB", "L"):
        return None
    data = _file_bytes(source)
    end = len(data)
    while end > 2 and data[end - 1] == 0 and end > len(data) - 4096:
        end -= 1
    if end < 2 or data[end - 2] != 0xFF or data[end - 1] != 0xD9:
        return None
    try:  # strict: a recoverable libjpeg error (corrupt data) raises too
        decoded = simplejpeg.decode_jpeg(data[:end], colorspace="RGB", strict=True)
    except ValueError:
        return None
    if decoded.shape[:2] != (image.height, image.width):
        return None
    return _upright(np.asarray(decoded, dtype=np.uint8), image.getexif().get(0x0112, 1))


def _upright(pixels: RGBImage, orientation: int) -> RGBImage:
    """``pixels`` turned as ``ImageOps.exif_transpose`` turns a picture with EXIF ``orientation``
    (1-8; any other value leaves it as it is), by OpenCV's threaded copies (one pass each but 5 and 7)."""
    import cv2

    turns: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda p: cv2.flip(p, 1),
        3: lambda p: cv2.rotate(p, cv2.ROTATE_180),
        4: lambda p: cv2.flip(p, 0),
        5: cv2.transpose,
        6: lambda p: cv2.rotate(p, cv2.ROTATE_90_CLOCKWISE),
        7: lambda p: cv2.flip(cv2.transpose(p), -1),
        8: lambda p: cv2.rotate(p, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    turn = turns.get(orientation)
    return pixels if turn is None else np.asarray(turn(pixels), dtype=np.uint8)


def _file_bytes(source: Path | io.BytesIO) -> npt.NDArray[np.uint8]:
    if isinstance(source, Path):
        return np.fromfile(source, dtype=np.uint8)
    return np.frombuffer(source.getbuffer(), dtype=np.uint8)


def _opencv_rgb(data: npt.NDArray[np.uint8]) -> RGBImage | None:
    """An encoded picture decoded by OpenCV as RGB (upright by its EXIF orientation), None if it fails."""
    import cv2

    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV 4.11 and later
    decoded = cv2.imdecode(data, rgb_flag if rgb_flag is not None else cv2.IMREAD_COLOR)
    if decoded is None:
        return None
    return np.asarray(decoded if rgb_flag is not None else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _decode_still_webp(
    image: object, source: Path | io.BytesIO
) -> tuple[RGBImage, npt.NDArray[np.uint8] | None] | None:
    """A WebP's RGB pixels and alpha (None for an RGB WebP) decoded by OpenCV, or None where Pillow
    should decode it instead.

    Both use libwebp and give the same pixels; OpenCV decodes straight into one array, in half the
    time (a 12 MP photo: 170 against 334 ms, and 153-166 against 364-386 ms through ``read_image``).
    Taken only for a still RGB or RGBA WebP without an EXIF turn; OpenCV refuses a cut-off file
    (None), and Pillow then reports it.
    """
    import cv2
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.format != "WEBP" or image.mode not in ("RGB", "RGBA") or getattr(image, "is_animated", False):
        return None
    if image.getexif().get(0x0112, 1) != 1:  # an EXIF orientation: Pillow's exif_transpose turns it
        return None
    if image.mode == "RGB":
        rgb = _opencv_rgb(_file_bytes(source))
        return None if rgb is None or rgb.shape != (image.height, image.width, 3) else (rgb, None)
    bgra = cv2.imdecode(_file_bytes(source), cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.shape != (image.height, image.width, 4):
        return None
    return np.asarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB), dtype=np.uint8), np.ascontiguousarray(bgra[..., 3])


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

    The temporary file is hidden (``.name.<pid>-<host>.XXXX.part``) in the destination folder so the
    rename is atomic; on any failure, interruption included, it is removed and ``path`` is untouched.
    Only a writer killed outright (SIGKILL, power loss) leaves one behind: its name says which process
    wrote it, so a later run can tell it is stale (``remove_stale_temporaries``).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".part",
                                                  dir=path.parent)
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
def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _writer_tag() -> str:
    """``<pid>-<host>``: not cached, a worker process has a PID of its own."""
    return f"{os.getpid()}-{_host_tag()}"


# .<output name>.<pid>-<host>.<mkstemp's random letters>.part
_TEMPORARY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[A-Za-z0-9-]*)\.[A-Za-z0-9_]+\.part$")


def remove_stale_temporaries(outputs: Iterable[Path], *, mine: bool = False) -> list[Path]:
    """Remove the temporaries that killed writers left beside these outputs; return what was removed.

    A temporary is stale when it was written on this host by a process that no longer runs. Those of
    live processes (another bgremove writing there now) and of other hosts (a shared folder) are left
    alone. Each folder is listed once, however many outputs it holds. ``mine`` also removes this
    process's own, for when it was interrupted and none of its writes can be in progress any more
    (a signal that lands just as a temporary is created can leave one behind).
    """
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows, not probe it
        return []
    names_by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        names_by_folder.setdefault(output.parent, set()).add(output.name)
    removed: list[Path] = []
    for folder, names in names_by_folder.items():
        try:
            entries = [entry.name for entry in os.scandir(folder) if entry.name.endswith(".part")]
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY_NAME.match(entry)
            if match is None or match["name"] not in names or match["host"] != _host_tag():
                continue
            pid = int(match["pid"])
            if not (mine and pid == os.getpid()) and _process_alive(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                (folder / entry).unlink()
                removed.append(folder / entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    try:  # a killed process its parent has not reaped yet (a zombie) writes no more
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


@functools.cache
def _umask() -> int:
    """The process's umask, read once: os.umask can only be read by setting it, which is not
    thread-safe, so it is not done per file."""
    current = os.umask(0)
    os.umask(current)
    return current


# A PNG chunk holds at most 2**31 - 1 bytes; IDAT data is split into chunks of this size.
_PNG_CHUNK = 1 << 30


def _encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of gray, RGB or RGBA 8-bit pixels, lossless: every row Up-filtered (each byte minus
    the one above it) and deflated with ISA-L at level 2 (python-isal).

    For a 12 MP RGBA cut-out that takes 0.12 s (30 ms filtering, 90 ms deflating) and writes a file 3%
    smaller than libpng at zlib level 1 with the same filter through OpenCV, which took 0.34-0.48 s;
    Pillow's level 6 with adaptive filters took 3.0 s for 15% smaller files.
    """
    import struct
    import zlib

    from isal import isal_zlib

    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}.get(channels)  # gray, RGB, RGBA
    if colour_type is None or pixels.dtype != np.uint8 or not height or not width:
        raise OutputError(f"cannot encode a {pixels.shape} {pixels.dtype} image as PNG")
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 2  # filter type Up (the first row has zeros above it: its bytes as they are)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    compressed = isal_zlib.compress(filtered, 2)
    del filtered

    parts: list[bytes | memoryview] = [b"\x89PNG\r\n\x1a\n"]

    def chunk(kind: bytes, data: bytes | memoryview) -> None:
        parts.extend([struct.pack(">I", len(data)), kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))])

    chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
    view = memoryview(compressed)
    for offset in range(0, len(view), _PNG_CHUNK):
        chunk(b"IDAT", view[offset : offset + _PNG_CHUNK])
    chunk(b"IEND", b"")
    return b"".join(parts)


def _full_chroma(jpeg_quality: int, subsampling: str | None = None) -> bool:
    """Whether a JPEG keeps its colour at full resolution (4:4:4) rather than halved both ways (4:2:0).

    A JPEG input's own layout stands (``subsampling``, from ``ImageInfo``): nearly every camera and
    phone writes 4:2:0, so its colour never had more detail than 4:2:0 holds, and that output takes
    half the encoding time of 4:4:4 (a 12 MP photo at quality 95: 46 against 91 ms) for files 17-20%
    smaller. Other inputs get 4:4:4 at quality 90 and above, for the sharp colour edge where a
    subject meets its new background.
    """
    if subsampling is not None:
        return subsampling == "4:4:4"
    return jpeg_quality >= 90


def _encode_jpeg(pixels: npt.NDArray[np.uint8], quality: int, subsampling: str | None = None) -> bytes | None:
    """JPEG bytes of 8-bit RGB or gray pixels, encoded by OpenCV, or None for anything else (Pillow
    then encodes it, or says why it cannot: an RGBA JPEG).

    OpenCV and Pillow both encode with libjpeg-turbo, with the same tables and headers: the same
    bytes, checked by a test. OpenCV takes the whole picture at once without the GIL: a 12 MP
    photo at quality 95 in 4:4:4 took 53 ms and 4 more for the turn to BGR (67 against Pillow's 80
    into a file).
    """
    import cv2

    rgb = pixels.ndim == 3 and pixels.shape[2] == 3
    # (gray below quality 90: Pillow's header differs, so Pillow writes it)
    if pixels.dtype != np.uint8 or not (rgb or (pixels.ndim == 2 and _full_chroma(quality))):
        return None
    picture = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if rgb else np.ascontiguousarray(pixels)
    sampling = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if _full_chroma(quality, subsampling)
                else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                                                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    if not ok:
        raise OutputError(f"OpenCV could not encode a {pixels.shape} image as JPEG")
    return encoded.tobytes()


def _encode_whole(pixels: npt.NDArray[np.uint8], fmt: str, jpeg_quality: int, subsampling: str | None) -> bytes | None:
    """The file's bytes where bgremove encodes ``fmt`` itself, whole and without the GIL (PNG, and JPEG
    of RGB or gray pixels); None where Pillow encodes it."""
    if fmt == "PNG":
        return _encode_png(pixels)
    return _encode_jpeg(pixels, jpeg_quality, subsampling) if fmt == "JPEG" else None


def write_image(path: Path, pixels: npt.NDArray[np.uint8], fmt: str, *, jpeg_quality: int = 95,
                subsampling: str | None = None) -> None:
    """Write RGB, RGBA or gray pixels atomically as ``fmt``. ``subsampling``: the JPEG input's own
    (``ImageInfo.subsampling``), which a JPEG output keeps (see ``_full_chroma``).

    PNG and JPEG are encoded whole without the GIL held (``_encode_whole``), then written. Pillow
    encodes the other formats straight into the file, where its encoders release the GIL (into a
    ``BytesIO`` some hold it throughout, and in a batch the other threads would wait that long).
    """
    encoded = _encode_whole(pixels, fmt, jpeg_quality, subsampling)
    if encoded is not None:
        with atomic_output(path) as temporary:
            temporary.write_bytes(encoded)
        return
    image, options = _pillow_image(pixels, fmt, jpeg_quality, subsampling)
    with atomic_output(path) as temporary, temporary.open("wb") as file:
        image.save(file, format=fmt, **options)


def encode_image(pixels: npt.NDArray[np.uint8], fmt: str, *, jpeg_quality: int = 95,
                 subsampling: str | None = None) -> bytes:
    """The bytes of ``pixels`` as an image file in ``fmt`` (what ``write_image`` writes, and what goes
    down a pipe)."""
    encoded = _encode_whole(pixels, fmt, jpeg_quality, subsampling)
    if encoded is not None:
        return encoded
    image, options = _pillow_image(pixels, fmt, jpeg_quality, subsampling)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# libwebp's effort (0-6; Pillow's and cwebp's default is 4). Method 2 skips the rate-distortion search
# that 3 and up make: on ten real photos from 0.15 to 14 MP (quality 90) it took 0.40 of method 4's
# CPU time (495 against 1368 ms for a 14 MP photo), for files 1.3% larger and 0.3 dB less PSNR
# (41.1 against 41.4 dB); cut-outs with alpha took 0.51-0.65 of the time, 0-13% larger. Method 1 was no
# faster than 2 and 10% larger; method 0, 1.5 times larger.
_WEBP_METHOD = 2


def _pillow_image(
    pixels: npt.NDArray[np.uint8], fmt: str, jpeg_quality: int, subsampling: str | None = None
) -> tuple[PILImage.Image, dict[str, object]]:
    """The Pillow image to save as ``fmt`` (not PNG: see ``_encode_png``), and the options to save it with."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": jpeg_quality, "subsampling": 0 if _full_chroma(jpeg_quality, subsampling) else 2}
    elif fmt == "WEBP":
        options = {"quality": 90, "method": _WEBP_METHOD}
    elif fmt == "GIF":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE) if image.mode == "RGB" else image
    return image, options


# ---------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class InputFile:
    """One file to process.

    ``root`` is the folder its place under ``--output-dir`` is measured from (None: straight into it);
    ``argument`` is the command-line argument (file, folder or pattern) it came from.
    """

    path: Path
    root: Path | None = None
    argument: Path | None = None


def find_inputs(
    arguments: Iterable[Path], *, recursive: bool = False, skip_suffix: str | None = None
) -> tuple[list[InputFile], list[Path]]:
    """Expand file, folder and pattern arguments into input files.

    A folder gives its image and video files (by extension; each is still read by content later), sorted, its
    subfolders too with ``recursive``; hidden files and our own outputs (names ending in
    ``skip_suffix``) are left out. An argument that is not an existing path but holds ``*``, ``?`` or
    ``[`` is a glob pattern (``**`` spans folders); its matches are taken like a folder's entries. A file
    argument is taken as it is, whatever its extension; a pattern that matches nothing stays as it is (and
    fails as "no file matches"). Returns the inputs and the entries passed over because they are not media.

    Every input gets the same ``root``: the deepest folder holding all the arguments (a folder argument
    itself, a file's parent), so an output tree mirrors the inputs and two ``photo.jpg`` from different
    folders never meet.
    """
    inputs: list[InputFile] = []
    skipped: list[Path] = []
    bases: list[Path] = []  # the folder arguments, and the folders of the files named

    def take(path: Path, argument: Path) -> None:
        if path.suffix.lower() not in IMAGE_EXTENSIONS and path.suffix.lower() not in VIDEO_EXTENSIONS:
            skipped.append(path)
        elif not (skip_suffix and path.stem.endswith(skip_suffix)):
            inputs.append(InputFile(path, argument=argument))

    for argument in arguments:
        if argument.is_dir():
            bases.append(argument)
            for path in _walk(argument, recursive):
                take(path, argument)
        elif not argument.exists() and _is_pattern(str(argument)):
            matches = sorted(glob.glob(str(argument), recursive=True))
            if not matches:
                inputs.append(InputFile(argument, argument=argument))
            files: dict[Path, None] = {}  # ``**/*`` matches folders and the files in them: each file once
            for match in map(Path, matches):
                if match.is_dir():
                    bases.append(match)
                    files.update(dict.fromkeys(_walk(match, recursive)))
                elif match.is_file():
                    bases.append(match.parent)
                    files[match] = None
            for path in sorted(files):
                take(path, argument)
        else:
            bases.append(argument.parent)
            inputs.append(InputFile(argument, argument=argument))
    root = _common_folder(bases)
    return [InputFile(item.path, root, item.argument) for item in inputs], skipped


def _is_pattern(text: str) -> bool:
    return re.search(r"[*?[]", text) is not None


def _common_folder(folders: list[Path]) -> Path | None:
    if not folders:
        return None
    try:
        return Path(os.path.commonpath([str(folder.resolve()) for folder in folders]))
    except (ValueError, OSError):  # different drives on Windows
        return None


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
