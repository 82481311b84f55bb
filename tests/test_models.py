"""Finding, verifying and downloading model files, against a real HTTP server on loopback (no internet)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from bgremove import models
from bgremove.errors import ModelIntegrityError, ModelUnavailable, UnknownSegmenter
from bgremove.models import MODELS, ModelSpec, ModelState, ResolvedModel

if TYPE_CHECKING:
    from collections.abc import Iterator

SHARED_MODELS = Path(
    os.environ.get("BGREMOVE_MODEL_DIR") or Path(__file__).resolve().parents[2] / "shared" / "models"
)
SELFIE = MODELS["selfie"]
HAIR = MODELS["hair"]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corrupt_copy(source: Path, target: Path) -> Path:
    """Same size as the source, one byte changed in the middle."""
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No model folder or mirror from the developer's environment; a fresh cache per test."""
    monkeypatch.delenv(models.MODEL_DIR_ENV, raising=False)
    monkeypatch.delenv(models.MODEL_URL_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(models.CACHE_DIR_ENV, str(cache))
    return cache


@pytest.fixture
def selfie_file() -> Path:
    path = SHARED_MODELS / SELFIE.filename
    if not path.is_file():
        pytest.skip(f"needs the real model file {path}")
    return path


@pytest.fixture
def env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-models"
    folder.mkdir()
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to resolve a host name or send a request."""
    import requests

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network call was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(requests.Session, "send", refuse)


class ModelHandler(SimpleHTTPRequestHandler):
    """Serves a folder, plus /truncated/<file> (closes after half the bytes) and /redirect/<file>."""

    def do_GET(self) -> None:
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / "good" / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "http://models.example.com/" + self.path.rsplit("/", 1)[-1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def server(tmp_path: Path, selfie_file: Path) -> Iterator[str]:
    """Base URL of a loopback server with good/<selfie>, bad/<selfie> (wrong sha256) and the special paths."""
    root = tmp_path / "served"
    (root / "good").mkdir(parents=True)
    shutil.copyfile(selfie_file, root / "good" / SELFIE.filename)
    corrupt_copy(selfie_file, root / "bad" / SELFIE.filename)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(ModelHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cache_listing(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


# --- resolution order and local files ----------------------------------------------------------------------


def test_path_beats_env_dir_beats_cache(
    selfie_file: Path, env_dir: Path, isolated_env: Path, tmp_path: Path
) -> None:
    isolated_env.mkdir()
    shutil.copyfile(selfie_file, isolated_env / SELFIE.filename)
    shutil.copyfile(selfie_file, env_dir / SELFIE.filename)
    own = tmp_path / "mine" / "portrait.tflite"
    own.parent.mkdir()
    shutil.copyfile(selfie_file, own)

    assert models.resolve(str(own), download=False) == ResolvedModel(own, SELFIE, "path")
    assert models.resolve("selfie", download=False) == ResolvedModel(env_dir / SELFIE.filename, SELFIE, "env")
    (env_dir / SELFIE.filename).unlink()
    assert models.resolve("selfie", download=False) == ResolvedModel(
        isolated_env / SELFIE.filename, SELFIE, "cache"
    )


def test_path_to_unknown_model_has_no_spec(tmp_path: Path) -> None:
    own = tmp_path / "custom.onnx"
    own.write_bytes(b"not a known model")
    assert models.resolve(str(own)) == ResolvedModel(own, None, "path")


def test_path_with_a_known_size_but_other_bytes_has_no_spec(selfie_file: Path, tmp_path: Path) -> None:
    own = corrupt_copy(selfie_file, tmp_path / "edited.tflite")
    assert models.resolve(str(own)).spec is None


def test_bad_file_in_env_dir_is_refused_and_kept(
    selfie_file: Path, env_dir: Path, isolated_env: Path
) -> None:
    bad = corrupt_copy(selfie_file, env_dir / SELFIE.filename)
    isolated_env.mkdir()
    shutil.copyfile(selfie_file, isolated_env / SELFIE.filename)  # a good cached copy must not hide the error

    with pytest.raises(ModelIntegrityError) as caught:
        models.resolve("selfie")
    message = str(caught.value)
    assert str(bad) in message
    assert SELFIE.sha256 in message
    assert sha256_of(bad) in message
    assert models.MODEL_DIR_ENV in message
    assert "\n" not in message
    assert bad.is_file()  # the user's file is never deleted


def test_bad_cached_file_is_removed_when_downloads_are_off(selfie_file: Path, isolated_env: Path) -> None:
    bad = corrupt_copy(selfie_file, isolated_env / SELFIE.filename)
    actual = sha256_of(bad)
    with pytest.raises(ModelIntegrityError) as caught:
        models.resolve("selfie", download=False)
    assert str(bad) in str(caught.value)
    assert actual in str(caught.value)
    assert SELFIE.sha256 in str(caught.value)
    assert not bad.exists()


def test_bad_cached_file_is_replaced_by_a_fresh_download(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, selfie_file: Path
) -> None:
    corrupt_copy(selfie_file, isolated_env / SELFIE.filename)
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    resolved = models.resolve("selfie")
    assert resolved.source == "download"
    assert sha256_of(resolved.path) == SELFIE.sha256


def test_missing_file_without_download_names_where_it_looked(isolated_env: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        models.resolve("selfie", download=False)
    message = str(caught.value)
    assert SELFIE.filename in message
    assert str(isolated_env) in message
    assert models.MODEL_DIR_ENV in message


def test_verification_is_remembered_until_the_file_changes(
    selfie_file: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = env_dir / SELFIE.filename
    shutil.copyfile(selfie_file, target)
    calls: list[Path] = []
    real_hash = models._sha256_file

    def counting_hash(path: Path) -> str:
        calls.append(path)
        return real_hash(path)

    monkeypatch.setattr(models, "_sha256_file", counting_hash)
    for _ in range(3):
        assert models.resolve("selfie", download=False).source == "env"
    assert len(calls) == 1

    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    models.resolve("selfie", download=False)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("nonexistent", "unknown model 'nonexistent': known models are selfie, selfie-landscape, hair"),
        ("missing/model.tflite", "model file not found: missing/model.tflite"),
        ("model.onnx", "model file not found: model.onnx"),
        ("MODEL.TFLITE", "model file not found: MODEL.TFLITE"),
    ],
)
def test_unknown_names_and_missing_paths(argument: str, expected: str, no_network: None) -> None:
    with pytest.raises(UnknownSegmenter) as caught:
        models.resolve(argument)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_name_lists_every_known_name() -> None:
    with pytest.raises(UnknownSegmenter) as caught:
        models.resolve("selfy")
    for name in MODELS:
        assert name in str(caught.value)


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(UnknownSegmenter, match="folder"):
        models.resolve(str(tmp_path))


# --- downloads ---------------------------------------------------------------------------------------------


def test_download_from_mirror_into_cache(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good/")
    pooch_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            pooch_records.append(record)

    import pooch

    keep = Keep(logging.DEBUG)
    pooch.get_logger().addHandler(keep)
    try:
        resolved = models.resolve("selfie")
    finally:
        pooch.get_logger().removeHandler(keep)

    assert resolved == ResolvedModel(isolated_env / SELFIE.filename, SELFIE, "download")
    assert sha256_of(resolved.path) == SELFIE.sha256
    assert cache_listing(isolated_env) == [SELFIE.filename]  # no temporary files left
    assert pooch_records == []
    assert capsys.readouterr() == ("", "")  # progress off: nothing printed
    assert models.resolve("selfie") == ResolvedModel(resolved.path, SELFIE, "cache")


def test_download_progress_bar_goes_to_stderr(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    models.resolve("selfie", progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert SELFIE.filename in err


def test_download_with_wrong_sha256_is_refused(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, selfie_file: Path
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/bad")
    with pytest.raises(ModelIntegrityError) as caught:
        models.resolve("selfie")
    message = str(caught.value)
    assert SELFIE.filename in message
    assert SELFIE.sha256 in message
    assert sha256_of(corrupt_copy(selfie_file, isolated_env.parent / "expected-bad")) in message
    assert cache_listing(isolated_env) == []


def test_interrupted_download_leaves_nothing(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/truncated")
    with pytest.raises(ModelUnavailable) as caught:
        models.resolve("selfie")
    assert not isinstance(caught.value, ModelIntegrityError)  # reported as a broken download
    assert "broke" in str(caught.value)
    assert cache_listing(isolated_env) == []


def test_missing_file_on_mirror(server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/nowhere")
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        models.resolve("selfie")
    assert cache_listing(isolated_env) == []


def test_server_down_gives_one_clear_line(
    closed_port: int, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"http://127.0.0.1:{closed_port}/models"
    monkeypatch.setenv(models.MODEL_URL_ENV, base)
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        models.resolve("selfie")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert not isinstance(caught.value, ModelIntegrityError)
    assert SELFIE.filename in message
    assert f"{base}/{SELFIE.filename}" in message
    assert models.MODEL_DIR_ENV in message
    assert "connection refused" in message
    assert "\n" not in message
    assert "HTTPConnectionPool" not in message
    assert cache_listing(isolated_env) == []


def test_stalled_server_times_out(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> None:
    with socket.socket() as listener:  # accepts connections (the backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        monkeypatch.setattr(models, "DOWNLOAD_TIMEOUT", (0.2, 0.2))
        monkeypatch.setenv(models.MODEL_URL_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(ModelUnavailable, match="timed out"):
            models.resolve("selfie")
    assert cache_listing(isolated_env) == []


@pytest.mark.parametrize(
    "base",
    [
        "http://models.example.com/mirror",
        "http://10.0.0.1/mirror",
        "ftp://127.0.0.1/mirror",
        "file:///tmp/mirror",
    ],
)
def test_insecure_urls_are_refused_before_any_network_call(
    base: str, monkeypatch: pytest.MonkeyPatch, no_network: None, isolated_env: Path
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, base)
    with pytest.raises(ModelUnavailable, match=r"refusing to download selfie_segmenter\.tflite"):
        models.resolve("selfie")
    assert cache_listing(isolated_env) == []


def test_redirect_to_plain_http_elsewhere_is_refused(
    server: str, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: str, *args: object, **kwargs: object) -> object:
        assert host in ("127.0.0.1", "localhost", "::1"), f"tried to reach {host}"
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/redirect")
    with pytest.raises(ModelUnavailable, match=r"http://models\.example\.com/"):
        models.resolve("selfie")
    assert cache_listing(isolated_env) == []


def test_loopback_names_are_allowed() -> None:
    for url in (
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://[::1]:80/x",
        "https://example.com/x",
    ):
        models._check_url(url, "x")


def test_model_without_official_url(monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    spec = ModelSpec(
        name="deeplab-onnx",
        filename="deeplab_v3_1_default_1.onnx",
        url=None,
        sha256="48a46b346ca7e2e96760b8a10a302046a3b5a9ce55e59d4c659c36d9cbd44118",
        size=2_781_296,
        backend="onnx",
        input_size=(257, 257),
        default_keep=("person",),
        description="test entry",
    )
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelUnavailable) as caught:
        models.resolve("deeplab-onnx")
    message = str(caught.value)
    assert "no official download" in message
    assert spec.filename in message
    assert models.MODEL_DIR_ENV in message


def test_mirror_serves_models_without_official_url(
    server: str, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setitem(MODELS, "selfie", replace(SELFIE, url=None))
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    assert models.resolve("selfie").path == isolated_env / SELFIE.filename


# --- model_states and fetch_models -------------------------------------------------------------------------


def test_model_states(selfie_file: Path, env_dir: Path, isolated_env: Path, no_network: None) -> None:
    shutil.copyfile(selfie_file, env_dir / SELFIE.filename)
    bad_hair = isolated_env / HAIR.filename
    bad_hair.parent.mkdir()
    bad_hair.write_bytes(b"not the hair model")

    states = {state.spec.name: state for state in models.model_states()}

    assert list(states) == list(MODELS)
    assert states["selfie"] == ModelState(SELFIE, env_dir / SELFIE.filename, "env", SELFIE.size, True)
    assert states["hair"] == ModelState(HAIR, bad_hair, "cache", len(b"not the hair model"), False)
    for name in set(MODELS) - {"selfie", "hair"}:
        assert states[name] == ModelState(MODELS[name], None, None, None, None)
    assert bad_hair.exists()  # reporting removes nothing


def test_model_states_sees_cached_good_file(selfie_file: Path, isolated_env: Path) -> None:
    isolated_env.mkdir()
    shutil.copyfile(selfie_file, isolated_env / SELFIE.filename)
    state = next(state for state in models.model_states() if state.spec is SELFIE)
    assert (state.source, state.verified) == ("cache", True)


def test_fetch_models_fills_the_cache(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    assert models.fetch_models(["selfie"]) == [
        ResolvedModel(isolated_env / SELFIE.filename, SELFIE, "download")
    ]
    assert cache_listing(isolated_env) == [SELFIE.filename]
    assert models.fetch_models(["selfie"])[0].source == "cache"


def test_fetch_models_fetches_what_it_can_then_lists_failures(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")  # the server has no hair model
    with pytest.raises(ModelUnavailable) as caught:
        models.fetch_models(["hair", "selfie"])
    message = str(caught.value)
    assert message.startswith("1 of 2 models could not be fetched: hair: ")
    assert HAIR.filename in message
    assert "selfie:" not in message
    assert cache_listing(isolated_env) == [SELFIE.filename]


def test_fetch_models_checks_names_before_downloading(no_network: None, isolated_env: Path) -> None:
    with pytest.raises(UnknownSegmenter, match="'nope'"):
        models.fetch_models(["selfie", "nope"])
    assert cache_listing(isolated_env) == []


def test_fetch_all_skips_models_without_download_unless_present(
    server: str, isolated_env: Path, env_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_url = ModelSpec(
        "local-only",
        "local_only.onnx",
        None,
        hashlib.sha256(b"local").hexdigest(),
        5,
        "onnx",
        None,
        None,
        "test entry",
    )
    also_no_url = replace(no_url, name="local-too", filename="local_too.onnx")
    selfie = replace(SELFIE, url=f"{server}/good/{SELFIE.filename}")
    registry = {spec.name: spec for spec in (selfie, no_url, also_no_url)}
    monkeypatch.setattr(models, "MODELS", registry)
    (env_dir / also_no_url.filename).write_bytes(b"local")

    assert models.fetch_models() == [
        ResolvedModel(isolated_env / SELFIE.filename, selfie, "download"),
        ResolvedModel(env_dir / also_no_url.filename, also_no_url, "env"),
    ]
    with pytest.raises(ModelUnavailable, match="local-only: model 'local-only' has no official download"):
        models.fetch_models(["local-only"])


# --- the same through the command line -------------------------------------------------------------


def _cli(*arguments: object):
    from click.testing import CliRunner

    from bgremove.cli import main

    return CliRunner().invoke(main, [str(argument) for argument in arguments], catch_exceptions=False)


def test_cli_fetch_then_list_models(server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    fetched = _cli("--fetch-models", "selfie", "-q")
    assert fetched.exit_code == 0, fetched.stderr
    assert str(isolated_env / SELFIE.filename) in fetched.stdout
    listing = {line.split()[0]: line for line in _cli("--list-models").stdout.splitlines()[1:]}
    assert "cache" in listing["selfie"] and "yes" in listing["selfie"]
    assert "missing" in listing["hair"]


def test_cli_first_use_downloads_the_model(
    server: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from helpers import save

    monkeypatch.setenv(models.MODEL_URL_ENV, f"{server}/good")
    photo = save(np.zeros((64, 48, 3), np.uint8), tmp_path / "photo.png")
    result = _cli(photo, "-q")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "photo_nobg.png").is_file() and cache_listing(isolated_env) == [SELFIE.filename]


def test_cli_model_that_cannot_be_fetched(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The multiclass model is not on this machine: its plumbing ends in one clear line, exit 1."""
    from helpers import save

    monkeypatch.setenv(models.MODEL_URL_ENV, f"http://127.0.0.1:{closed_port}")
    photo = save(np.zeros((64, 48, 3), np.uint8), tmp_path / "photo.png")
    result = _cli(photo, "-m", "multiclass")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "selfie_multiclass_256x256.tflite" in lines[0] and f"127.0.0.1:{closed_port}" in lines[0]
    assert "BGREMOVE_MODEL_DIR" in lines[0]
    assert not (tmp_path / "photo_nobg.png").exists()
