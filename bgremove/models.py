"""Model files: what each named model is, and where its file comes from.

A model file is found, in order: a path the user gave; the folder in ``BGREMOVE_MODEL_DIR``; the user
cache folder; otherwise it is downloaded from its official URL, sha256-checked, and kept in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Focus
from .errors import ModelIntegrityError, ModelUnavailable, UnknownSegmenter

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class ModelSpec:
    """One named model. Models that differ only in weights are one more entry here, not code."""

    name: str
    filename: str
    url: str | None  # official download URL; None when there is none (found only locally)
    sha256: str
    size: int  # bytes
    backend: str  # "mediapipe" or "onnx"
    input_size: tuple[int, int] | None  # (width, height) the network reads; None: unknown
    default_keep: tuple[str, ...] | None  # labels kept by default; None: every label but background
    description: str
    focus: Focus = Focus.SUBJECT  # where the zoomed second pass looks (refine.py)


_MP = "https://storage.googleapis.com/mediapipe-models/image_segmenter"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="selfie",
            filename="selfie_segmenter.tflite",
            url=f"{_MP}/selfie_segmenter/float16/1/selfie_segmenter.tflite",
            sha256="191ac9529ae506ee0beefa6b2c945a172dab9d07d1e802a290a4e4038226658b",
            size=249_537,
            backend="mediapipe",
            input_size=(256, 256),
            default_keep=None,
            description="people, portraits and half-body (256x256, fast)",
        ),
        ModelSpec(
            name="selfie-landscape",
            filename="selfie_segmenter_landscape.tflite",
            url=f"{_MP}/selfie_segmenter_landscape/float16/latest/selfie_segmenter_landscape.tflite",
            sha256="490e9ea734313e0de10fa0cd9e3c6133e36ea4db2b7a49bde9ef019f72796b8e",
            size=250_177,
            backend="mediapipe",
            input_size=(256, 144),
            default_keep=None,
            description="people in wide frames such as video calls (256x144, fastest)",
        ),
        ModelSpec(
            name="hair",
            filename="hair_segmenter.tflite",
            url=f"{_MP}/hair_segmenter/float32/1/hair_segmenter.tflite",
            sha256="2628cf3ce5f695f604cbea2841e00befcaa3624bf80caf3664bef2656d59bf84",
            size=781_618,
            backend="mediapipe",
            input_size=(512, 512),
            default_keep=("hair",),
            description="hair only (512x512)",
            focus=Focus.HEAD,
        ),
        ModelSpec(
            name="multiclass",
            filename="selfie_multiclass_256x256.tflite",
            url=f"{_MP}/selfie_multiclass_256x256/float32/1/selfie_multiclass_256x256.tflite",
            sha256="c6748b1253a99067ef71f7e26ca71096cd449baefa8f101900ea23016507e0e0",
            size=16_371_837,
            backend="mediapipe",
            input_size=(256, 256),
            default_keep=None,
            description="hair, body skin, face skin, clothes, others (256x256)",
        ),
        ModelSpec(
            name="deeplab",
            filename="deeplab_v3.tflite",
            url=f"{_MP}/deeplab_v3/float32/1/deeplab_v3.tflite",
            sha256="ff36e24d40547fe9e645e2f4e8745d1876d6e38b332d39a82f0bf0f5d1d561b3",
            size=2_780_176,
            backend="mediapipe",
            input_size=(257, 257),
            default_keep=("person",),
            description="21 PASCAL VOC classes: person, cat, dog, car... (257x257)",
        ),
        ModelSpec(
            name="deeplab-onnx",
            filename="deeplab_v3_1_default_1.onnx",
            url=None,  # a tf2onnx conversion with no official download: BGREMOVE_MODEL_DIR or a path
            sha256="48a46b346ca7e2e96760b8a10a302046a3b5a9ce55e59d4c659c36d9cbd44118",
            size=2_781_296,
            backend="onnx",
            input_size=(257, 257),
            default_keep=("person",),
            description="DeepLabV3 on ONNX Runtime, CPU or GPU; 21 PASCAL VOC classes",
        ),
    )
}

# --- where model files come from -------------------------------------------------------------------------

MODEL_DIR_ENV = "BGREMOVE_MODEL_DIR"  # a folder holding model files, used before the cache
MODEL_URL_ENV = "BGREMOVE_MODEL_URL"  # base URL of a mirror: files come from <base>/<filename>
CACHE_DIR_ENV = "BGREMOVE_CACHE_DIR"  # overrides the cache folder

DOWNLOAD_TIMEOUT: tuple[float, float] = (10.0, 60.0)  # seconds: (connect, between two reads)
_HASH_CHUNK = 1024 * 1024
_DOWNLOAD_CHUNK = 64 * 1024
_PATH_SUFFIXES = (".tflite", ".onnx")
_OFFLINE_HINT = (
    f"put the file in the folder named by {MODEL_DIR_ENV}, or download it on a machine with internet "
    "(`bgremove --fetch-models`) and copy it there"
)

logger = logging.getLogger(__name__)

# (resolved path, size, mtime_ns) -> sha256 hex digest, so that repeated resolves do not rehash a file
_sha256_memo: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load.

    ``spec`` is None for a file the user named whose bytes match no known model. ``source`` says where the
    file was found: "path" (given by the user), "env" (``BGREMOVE_MODEL_DIR``), "cache" or "download".
    """

    path: Path
    spec: ModelSpec | None
    source: str


@dataclass(frozen=True)
class ModelState:
    """Where a known model's file is on this machine, found without downloading anything.

    ``source`` is "env", "cache" or None (not present); ``verified`` is whether its sha256 matches, None
    when there is no file.
    """

    spec: ModelSpec
    path: Path | None
    source: str | None
    size: int | None
    verified: bool | None


def cache_dir() -> Path:
    """The folder downloaded models are kept in: ``$BGREMOVE_CACHE_DIR`` or the user cache folder.

    The folder is not created here.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bgremove")) / "models"


def resolve(name_or_path: str, *, download: bool = True, progress: bool = False) -> ResolvedModel:
    """Find the file of a model given by name (a key of ``MODELS``) or by path.

    Order: a path to an existing file (when ``name_or_path`` is not a model name); the folder in
    ``BGREMOVE_MODEL_DIR``; the cache folder; a download into the cache (when ``download`` is true),
    from ``<BGREMOVE_MODEL_URL>/<filename>`` when that is set, else from the model's official URL.
    Files found for a named model are sha256-checked; a file given by path is used as it is.

    ``progress`` shows a tqdm bar on stderr while downloading.

    Raises:
        UnknownSegmenter: not a model name, or a model path that does not exist.
        ModelIntegrityError: a file in ``BGREMOVE_MODEL_DIR`` or the cache (removed then), or a
            download, whose sha256 is not the known one.
        ModelUnavailable: the file is nowhere here and cannot be downloaded.
    """
    spec = MODELS.get(name_or_path)
    if spec is None:
        return _resolve_path(name_or_path)

    env_file = _env_model_file(spec)
    if env_file is not None:
        actual = _sha256(env_file)
        if actual != spec.sha256:
            raise ModelIntegrityError(
                f"model file {env_file} (in {MODEL_DIR_ENV}) has sha256 {actual}, expected {spec.sha256} "
                f"for '{spec.name}': replace it with the right file"
            )
        logger.debug("model %s: %s (from %s)", spec.name, env_file, MODEL_DIR_ENV)
        return ResolvedModel(env_file, spec, "env")

    cached = cache_dir() / spec.filename
    if cached.is_file():
        actual = _sha256(cached)
        if actual == spec.sha256:
            logger.debug("model %s: %s (cache)", spec.name, cached)
            return ResolvedModel(cached, spec, "cache")
        # A corrupt cache entry is ours to drop; a fresh download (if allowed) replaces it below.
        cached.unlink(missing_ok=True)
        logger.warning("removed %s: sha256 %s, expected %s", cached, actual, spec.sha256)
        if not download:
            raise ModelIntegrityError(
                f"cached model file {cached} had sha256 {actual}, expected {spec.sha256} for '{spec.name}': "
                "removed it; run again with downloads allowed to fetch it afresh"
            )

    if not download:
        raise ModelUnavailable(
            f"model '{spec.name}' ({spec.filename}) is not in {MODEL_DIR_ENV} ({_env_dir_text()}) nor in "
            f"the cache ({cache_dir()}) and downloading is off: {_OFFLINE_HINT}"
        )
    path = _download(spec, progress=progress)
    return ResolvedModel(path, spec, "download")


def model_states() -> list[ModelState]:
    """One state per known model, in registry order: where its file is and whether it is intact.

    Nothing is downloaded or removed.
    """
    states = []
    for spec in MODELS.values():
        path = _env_model_file(spec)
        source: str | None = "env"
        if path is None:
            path, source = cache_dir() / spec.filename, "cache"
            if not path.is_file():
                path, source = None, None
        if path is None:
            states.append(ModelState(spec, None, None, None, None))
        else:
            states.append(ModelState(spec, path, source, path.stat().st_size, _sha256(path) == spec.sha256))
    return states


def fetch_models(names: Sequence[str] | None = None, *, progress: bool = False) -> list[ResolvedModel]:
    """Make the named models present and verified for offline use.

    A model already intact in ``BGREMOVE_MODEL_DIR`` or the cache is left where it is; the others are
    downloaded into the cache. Every name is checked before anything is fetched. One failure does not stop
    the others: what can be fetched is fetched, then one ``ModelUnavailable`` lists every failure.

    ``names=None`` means every known model that can be downloaded (an official URL, or
    ``BGREMOVE_MODEL_URL`` is set), plus the others when their file is already here (they are verified).
    A model without a download, named explicitly and not here, is a failure.

    Returns the resolved models in the order asked (when none failed).

    Raises:
        UnknownSegmenter: a name that is not a known model (before any download).
        ModelUnavailable: one or more models could not be fetched; the message names each with its reason.
    """
    if names is None:
        wanted = [name for name, spec in MODELS.items() if _downloadable(spec) or _present(spec)]
    else:
        wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in MODELS]
    if unknown:
        raise UnknownSegmenter(
            f"unknown model {', '.join(map(repr, unknown))}: known models are {_known_names()}"
        )
    resolved: list[ResolvedModel] = []
    failures: list[str] = []
    for name in wanted:
        try:
            resolved.append(resolve(name, download=True, progress=progress))
        except ModelUnavailable as error:
            failures.append(f"{name}: {error}")
    if failures:
        raise ModelUnavailable(
            f"{len(failures)} of {len(wanted)} models could not be fetched: " + "; ".join(failures)
        )
    return resolved


# --- helpers -----------------------------------------------------------------------------------------------


def _known_names() -> str:
    return ", ".join(MODELS)


def _looks_like_path(text: str) -> bool:
    separators = [sep for sep in (os.sep, os.altsep, "/") if sep]
    return any(sep in text for sep in separators) or text.lower().endswith(_PATH_SUFFIXES)


def _resolve_path(name_or_path: str) -> ResolvedModel:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return ResolvedModel(path, _spec_for_file(path), "path")
    if path.is_dir():
        raise UnknownSegmenter(f"model path is a folder, not a model file: {name_or_path}")
    if _looks_like_path(name_or_path):
        raise UnknownSegmenter(f"model file not found: {name_or_path}")
    raise UnknownSegmenter(
        f"unknown model '{name_or_path}': known models are {_known_names()} (or give the path of a "
        f"{' or '.join(_PATH_SUFFIXES)} file)"
    )


def _spec_for_file(path: Path) -> ModelSpec | None:
    """The known model whose bytes these are, if any (only files of a known size are hashed)."""
    size = path.stat().st_size
    candidates = [spec for spec in MODELS.values() if spec.size == size]
    if not candidates:
        return None
    actual = _sha256(path)
    return next((spec for spec in candidates if spec.sha256 == actual), None)


def _env_dir() -> Path | None:
    folder = os.environ.get(MODEL_DIR_ENV)
    return Path(folder).expanduser() if folder else None


def _env_dir_text() -> str:
    folder = _env_dir()
    if folder is None:
        return "not set"
    return str(folder) if folder.is_dir() else f"{folder}, not a folder"


def _env_model_file(spec: ModelSpec) -> Path | None:
    folder = _env_dir()
    if folder is None:
        return None
    path = folder / spec.filename
    return path if path.is_file() else None


def _sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _sha256_memo.get(key)
    if digest is None:
        digest = _sha256_file(path)
        _sha256_memo[key] = digest
    return digest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remember_hash(path: Path, digest: str) -> None:
    stat = path.stat()
    _sha256_memo[(str(path.resolve()), stat.st_size, stat.st_mtime_ns)] = digest


def _downloadable(spec: ModelSpec) -> bool:
    return spec.url is not None or bool(os.environ.get(MODEL_URL_ENV))


def _present(spec: ModelSpec) -> bool:
    return _env_model_file(spec) is not None or (cache_dir() / spec.filename).is_file()


def _download_url(spec: ModelSpec) -> str:
    mirror = os.environ.get(MODEL_URL_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    if spec.url is None:
        raise ModelUnavailable(
            f"model '{spec.name}' has no official download: put {spec.filename} in the folder named by "
            f"{MODEL_DIR_ENV} ({_env_dir_text()}) or give the file's path instead of the name"
        )
    return spec.url


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, filename: str) -> None:
    """Allow https://, and http:// only to a loopback address (a local mirror or a test server)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if host and (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        return
    raise ModelUnavailable(
        f"refusing to download {filename} from {url}: only https:// URLs are allowed "
        "(plain http:// only to a loopback address such as 127.0.0.1)"
    )


def _download(spec: ModelSpec, *, progress: bool) -> Path:
    """Download a model into the cache with pooch, which writes to a temporary name in the cache folder,
    checks the sha256 and only then moves the file into place (the temporary file is removed on failure).
    """
    url = _download_url(spec)
    _check_url(url, spec.filename)

    import pooch
    import requests

    def refuse_insecure_redirect(response: requests.Response, *args: object, **kwargs: object) -> None:
        if response.is_redirect:
            from urllib.parse import urljoin

            _check_url(urljoin(response.url, response.headers["location"]), spec.filename)

    folder = cache_dir()
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        class _Bar(tqdm):  # type: ignore[type-arg]
            # pooch tests the bar's truth; tqdm's bool() is False (or raises) while the total is unknown
            def __bool__(self) -> bool:
                return True

        bar = _Bar(
            desc=spec.filename, total=spec.size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
        )
    downloader = pooch.HTTPDownloader(
        progressbar=bar if bar is not None else False,
        chunk_size=_DOWNLOAD_CHUNK,
        timeout=DOWNLOAD_TIMEOUT,
        hooks={"response": [refuse_insecure_redirect]},
    )
    pooch_logger = pooch.get_logger()
    pooch_level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)  # pooch logs "Downloading data from ..." to stderr at INFO
    logger.info("downloading %s from %s into %s", spec.filename, url, folder)
    try:
        fetched = pooch.retrieve(
            url, known_hash=f"sha256:{spec.sha256}", fname=spec.filename, path=folder, downloader=downloader
        )
    except requests.RequestException as error:
        raise ModelUnavailable(
            f"could not download {spec.filename} from {url} ({_network_reason(error)}): {_OFFLINE_HINT}"
        ) from error
    except ValueError as error:  # pooch: the sha256 of the download is not the known one
        actual = _other_hash(str(error), spec.sha256)
        raise ModelIntegrityError(
            f"downloaded {spec.filename} from {url} has sha256 {actual}, expected {spec.sha256}: "
            "refused and not kept"
        ) from error
    except OSError as error:
        raise ModelUnavailable(
            f"could not save {spec.filename} into the cache folder {folder}: {error.strerror or error}"
        ) from error
    finally:
        pooch_logger.setLevel(pooch_level)
        if bar is not None:
            bar.close()
    path = Path(fetched)
    _remember_hash(path, spec.sha256)
    return path


def _network_reason(error: Exception) -> str:
    """A few words on why a request failed, instead of urllib3's nested reprs."""
    import requests

    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}".strip()
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(
        error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
    ):
        return "the connection broke before the download finished"
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
    if match:
        return match.group(1).strip().lower()
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__


def _other_hash(message: str, expected: str) -> str:
    """The actual sha256 quoted in pooch's mismatch message."""
    digests = [digest for digest in re.findall(r"\b[0-9a-f]{64}\b", message.lower()) if digest != expected]
    return digests[0] if digests else "unknown"
