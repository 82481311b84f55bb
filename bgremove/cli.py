"""The ``bgremove`` command: options -> config objects -> library calls; progress; errors -> exit codes.

Exit codes: 0 every input done or skipped, 1 some input failed, 2 usage error, 130 interrupted.
Nothing heavy is imported at module level: ``bgremove --help`` must stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .allocator import keep_freed_memory
from .config import (
    DEFAULT_PRESET,
    PRESETS,
    BgFit,
    CompositeConfig,
    CompositeMode,
    MaskConfig,
    OutputConfig,
    RefineConfig,
    SegmenterConfig,
    VideoConfig,
)
from .native_logs import hide_native_logs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STDIN = Path("-")


class ColorType(click.ParamType):
    """A colour as ``#00ff00``, ``#0f0``, a CSS name such as ``green``, or ``0,255,0``."""

    name = "COLOR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int, int]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        if "," in text:
            parts = [part.strip() for part in text.split(",")]
            if len(parts) == 3 and all(part.isdigit() and int(part) <= 255 for part in parts):
                return (int(parts[0]), int(parts[1]), int(parts[2]))
            self.fail(f"'{value}' is not R,G,B with three numbers from 0 to 255", param, ctx)
        from PIL import ImageColor

        try:
            red, green, blue = ImageColor.getrgb(text)[:3]
        except ValueError:
            self.fail(f"'{value}' is not a colour (try '#00ff00', 'green' or '0,255,0')", param, ctx)
        return (red, green, blue)


class LabelListType(click.ParamType):
    """A comma-separated list of class labels, checked against the model once it is loaded."""

    name = "LABELS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        labels = tuple(part.strip() for part in str(value).split(",") if part.strip())
        if not labels:
            self.fail("give at least one label, e.g. --keep person,dog", param, ctx)
        return labels


class JobsType(click.ParamType):
    """How many files at once: a number from 1, or ``auto`` (given as 0: one per core)."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return 0
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"'{value}' is not a number of jobs from 1 up, or auto", param, ctx)


class OneLineErrors(click.Command):
    """A command whose errors are one line each: ``bgremove: error: <file or option>: <reason>``.

    click would print the usage synopsis and a hint over three lines; scripts that collect stderr want
    one line per problem. Exit codes stay click's: 2 for usage errors, 1 for other failures.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as error:
            click.echo(f"bgremove: error: {_one_line(error.format_message())} (see bgremove --help)", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            click.echo(f"bgremove: error: {_one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("bgremove: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


COMPOSITE_OPTIONS = ("transparent", "bg", "bg_color", "blur", "desaturate", "mask_only")
IMAGE_FORMATS = ("png", "jpg", "webp")
VIDEO_FORMATS = ("mp4", "webm", "mov")

EPILOG = """\b
Examples:
  bgremove photo.jpg                       # photo_nobg.png, transparent
  bgremove photo.jpg --bg starfield.png    # photo_nobg.jpg in front of the stars
  bgremove photo.jpg --bg-color white      # white background
  bgremove photo.jpg --blur 45             # blurred background
  bgremove shots/ -r --mask-only -o masks/ # mattes for a whole tree
  bgremove shots/ --fast                   # 1.5-3x quicker, coarser edges
  bgremove dog.jpg -m deeplab --keep dog   # keep the dog, not the person
  bgremove dog.jpg -m deeplab-onnx --keep dog --device auto   # same on ONNX Runtime
  bgremove talk.mp4 --blur 45              # talk_nobg.mp4, H.264, audio kept
  bgremove talk.mp4 --transparent          # talk_nobg.webm, VP9 with alpha
  bgremove talk.mp4 --format mov           # talk_nobg.mov, ProRes 4444 with alpha
  bgremove talk.mp4 --bg sea.mp4 --end 10  # first 10 s before a looping video
  bgremove 'shots/**/*.jpg' -o out/ -j auto   # a glob, the tree mirrored, one worker per core
  bgremove shots/ -r -o out/ --json > log.jsonl   # one JSON line per input for scripts
  bgremove shots/ -o out/ --dry-run        # what would be written; writes nothing
  cat photo.jpg | bgremove - > cut.png     # stdin to stdout, for pipes
  bgremove shots/ -o out/ --engine ray --ray-address auto   # on a Ray cluster
  bgremove --list-models                   # models and where their files are
  bgremove --fetch-models                  # download every model for offline use

\b
Exit codes: 0 all done or skipped, 1 some input failed, 2 usage error, 130 interrupted.
Existing outputs are skipped, so an interrupted run continues where it stopped when run again.
Models are read from $BGREMOVE_MODEL_DIR, then the user cache, else downloaded.
"""


@click.command(
    cls=OneLineErrors,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
# readable=False: an unreadable file is that file's failure, not a usage error that stops the batch
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("-m", "--model", default="selfie", show_default=True, metavar="NAME|PATH",
              help="Segmentation model: selfie, selfie-landscape, hair, multiclass, deeplab, deeplab-onnx, "
              "or a .tflite/.onnx file. Example: -m deeplab")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|...",
              help="Where ONNX models run: auto picks the best available; naming one that is not "
              "available is an error. Example: --device cuda")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              metavar="FILE", help="Class names of an ONNX model, one per line (21-class models get the "
              "PASCAL VOC names). Example: --labels classes.txt")
@click.option("--keep", type=LabelListType(), default=None,
              help="Classes that stay in front (default: person for deeplab, hair for hair, all but "
              "background otherwise). Example: --keep cat,dog")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None, metavar="T",
              help="Hard mask: keep pixels whose confidence is at least T (default: soft edges). "
              "Example: --threshold 0.5")
@click.option("--feather", type=click.FloatRange(0.0, 500.0), default=0.0, metavar="PX",
              help="Soften the mask edge over PX pixels. Example: --feather 3")
@click.option("--fast", is_flag=True, help="One pass of the model over the whole picture, no zoomed or mirrored "
              "passes, no edge or colour work: runs 1.5-3x quicker, with coarser outlines and a rim of the old "
              "background. Example: --fast")
@click.option("--quality", is_flag=True, help="Also run the model on the upper and lower part of a tall subject "
              "(standing people): slightly sharper full-body outlines for about 1.5x the default's model "
              "time. For videos, also refine every frame's edges and colours (about 3x slower; by default "
              "videos get one pass per frame at most, smoothed over time). Example: --quality")
@click.option("--transparent", is_flag=True, help="Transparent background, RGBA PNG (the default; WebM with "
              "alpha for videos). Example: --transparent")
@click.option("--bg", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="IMAGE|VIDEO",
              help="Put this image behind the subject; a video loops behind videos (images get its first "
              "frame). Example: --bg starfield.png or --bg waves.mp4")
@click.option("--bg-fit", type=click.Choice([fit.value for fit in BgFit]), default=None,
              help="How --bg fills the frame: cover crops (default), contain adds bars, stretch "
              "distorts. Example: --bg-fit contain")
@click.option("--bg-color", type=ColorType(), default=None,
              help="Plain colour background. Example: --bg-color '#00ff00' or green or 0,255,0")
@click.option("--blur", type=click.IntRange(1, 1001), default=None, metavar="N",
              help="Blur the background with an N-pixel Gaussian kernel (45 is strong). Example: --blur 45")
@click.option("--desaturate", is_flag=True, help="Gray background, subject in colour. Example: --desaturate")
@click.option("--mask-only", is_flag=True, help="Write the alpha matte as a grayscale PNG (a gray H.264 MP4 for "
              "videos). Example: --mask-only")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              metavar="DIR", help="Write outputs under DIR (mirroring input folders) instead of next to "
              "the inputs. Example: -o out/")
@click.option("--suffix", default="_nobg", show_default=True,
              help="Added to the input's name to name the output. Example: --suffix _cut")
@click.option("--format", "output_format", type=click.Choice(IMAGE_FORMATS + VIDEO_FORMATS, case_sensitive=False),
              multiple=True, help="Output format, once for images and/or once for videos. Images: PNG when "
              "transparent or a mask, else the input's format. Videos: mp4 (H.264) when opaque or a mask, "
              "webm (VP9 with alpha) when transparent; mov is ProRes 4444 with alpha, or H.264 when opaque. "
              "Example: --format webp --format mov")
@click.option("--crf", type=click.IntRange(0, 51), default=20, show_default=True, metavar="Q",
              help="Video quality: lower is better and bigger (H.264 scale; VP9 gets Q+10). "
              "Example: --crf 18")
@click.option("--preset", type=click.Choice(PRESETS), default=DEFAULT_PRESET, show_default=True,
              help="Video encoding speed: x264's presets; slower ones make smaller files at the same quality. "
              "The default is superfast with x264's macroblock-tree rate control kept on: veryfast's file "
              "size for some 45% less encoding time. Example: --preset medium")
@click.option("--no-audio", is_flag=True, help="Leave the audio out of video outputs (default: every audio "
              "stream is kept, copied when the container allows). Example: --no-audio")
@click.option("--smooth", type=click.IntRange(0, 10), default=3, show_default=True, metavar="N",
              help="Smooth video mattes over N frames before and after each frame to stop flicker; 0 turns "
              "it off, lower keeps fast motion sharper. Example: --smooth 2")
@click.option("--segment-every", type=click.IntRange(1, 10), default=2, show_default=True, metavar="N",
              help="Videos: run the model on every Nth frame, and on the frames between only where the "
              "subject moved; the others get their neighbours' smoothed matte (needs --smooth; 1 runs it "
              "on every frame). Example: --segment-every 1")
@click.option("--start", type=click.FloatRange(min=0.0), default=0.0, metavar="SEC",
              help="Videos: begin at SEC seconds. Example: --start 12.5")
@click.option("--end", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="SEC",
              help="Videos: stop at SEC seconds (from the start of the video). Example: --end 20")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them). "
              "Example: --overwrite")
@click.option("-r", "--recursive", is_flag=True, help="Also take images and videos in subfolders of folder "
              "arguments. Example: -r")
@click.option("-j", "--jobs", type=JobsType(), default=None,
              help="Process N files at once, in worker processes that each load the model once; auto: one "
              "per core (default: 1, in this process; with --engine ray: the cluster's CPUs). "
              "Example: -j auto")
@click.option("--dry-run", is_flag=True, help="Print what would be written (input -> output, or why not) on "
              "stdout; write nothing, load no model. Example: --dry-run")
@click.option("--json", "json_lines", is_flag=True, help="Write one JSON object per input to stdout (input, "
              "output, status done/skipped/failed, error, seconds, frames); messages stay on stderr. "
              "Example: --json")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where files are processed: here (local), or with Ray Data on a local Ray or the cluster "
              "of --ray-address (pip install 'bgremove[ray]'). Example: --engine ray")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="The running Ray cluster --engine ray joins: auto on one of its nodes (as in a ray job "
              "submit entry point), or HOST:6379 (default: start a local Ray). Example: --ray-address auto")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, notes or summary; errors only. Example: -q")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens, with tracebacks for errors. Example: -v")
@click.option("--list-models", is_flag=True, help="List the models, where their files are and whether they "
              "are verified, then exit. Example: --list-models")
@click.option("--fetch-models", is_flag=True, help="Download models for offline use (all, or the names "
              "given as arguments), then exit. Example: --fetch-models selfie hair")
@click.version_option(__version__, "-V", "--version", prog_name="bgremove")
def main(files: tuple[Path, ...], **options: Any) -> None:
    """Remove or replace the background of photos and videos.

    FILES are images, videos or folders of them. Each output is written next to its input as
    <name>_nobg.<ext> (or under --output-dir); inputs are never overwritten.
    """
    # bgremove does no matrix products; NumPy's OpenBLAS would still start a thread per core that
    # spins for a while (0.1-0.2 s of CPU per run). Set before NumPy loads; the user's value wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()
    _setup_logging(options["verbose"])
    show_progress = not options["quiet"] and sys.stderr.isatty()
    if options["list_models"]:
        _list_models()
        return
    if options["fetch_models"]:
        _fetch_models([str(name) for name in files], progress=show_progress)
        return
    if not files:
        raise click.UsageError("give at least one image, video or folder")
    from_stdin = _check_batch_options(files, options)
    composite = _composite_config(options)
    image_format, video_format = _split_formats(options["output_format"])
    if options["end"] is not None and options["end"] <= options["start"]:
        raise click.BadParameter(f"{options['end']:g} is not after --start {options['start']:g}",
                                 param_hint="'--end'")
    output = OutputConfig(
        suffix=options["suffix"],
        output_dir=options["output_dir"],
        format=image_format,
        overwrite=options["overwrite"],
        video_format=video_format,
        video=VideoConfig(crf=options["crf"], preset=options["preset"], audio=not options["no_audio"],
                          start=options["start"], end=options["end"]),
    )
    _check_output_format(composite.mode, output.format, output.video_format)
    if "/" in output.suffix or os.sep in output.suffix or "\0" in output.suffix:
        raise click.BadParameter("must be part of a file name, without '/'", param_hint="'--suffix'")
    if not output.suffix and output.output_dir is None:
        raise click.UsageError("an empty --suffix needs --output-dir, or outputs would replace the inputs")
    every, smooth = options["segment_every"], options["smooth"]
    if every > smooth + 1 and click.get_current_context().get_parameter_source("segment_every") \
            is click.core.ParameterSource.COMMANDLINE:
        raise click.BadParameter(f"{every} needs --smooth {every - 1} or more: the frames between model "
                                 "passes get their neighbours' matte", param_hint="'--segment-every'")
    if options["fast"] and options["quality"]:
        raise click.UsageError("choose --fast or --quality, not both")
    if options["fast"]:
        composite = dataclasses.replace(composite, decontaminate=False)
    pipeline_options = dict(
        segmenter=SegmenterConfig(model=options["model"], device=options["device"],
                                  labels_file=options["labels_file"]),
        mask=MaskConfig(keep=options["keep"], threshold=options["threshold"], feather=options["feather"],
                        smooth=options["smooth"], segment_every=options["segment_every"]),
        composite=composite,
        refine=_refine_config(options),
        refine_videos=options["quality"],
    )
    if from_stdin:
        sys.exit(_run_stdin(pipeline_options, output, quiet=options["quiet"]))
    code = _run(list(files), pipeline_options, output, recursive=options["recursive"], quiet=options["quiet"],
                show_progress=show_progress, jobs=options["jobs"], json_lines=options["json_lines"],
                dry_run=options["dry_run"], engine=options["engine"], ray_address=options["ray_address"])
    sys.exit(code)


def run() -> None:
    """The ``bgremove`` command: ``main``, then the process ends without tearing the interpreter down.

    By then every output is written, renamed and closed. Python's teardown (freeing each module's
    objects, MediaPipe's and OpenCV's among them) took 0.08-0.17 s of every run here, which a script
    calling bgremove once per file pays each time. Where something still needs Python's exit to stop
    it cleanly (a Ray runtime, worker processes, multiprocessing finalizers still pending after a
    stopped ``-j`` run, a thread that is not a daemon and still runs after a second), it exits as
    usual: skipping multiprocessing's finalizers made its resource tracker report leaked semaphores.
    """
    _own_stderr()
    hide_native_logs()  # (MediaPipe's native log lines, in the command's own process)
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    else:  # --list-models and --fetch-models return
        code = 0
    _exit(code)


def _own_stderr() -> None:
    """Point ``sys.stderr`` at a descriptor of its own, a copy of 2.

    MediaPipe's native log lines are hidden by pointing descriptor 2 at /dev/null while a model loads
    (``quiet_native_stderr``), and a video's model loads in a thread while the main thread goes on
    reporting: through descriptor 2 itself, the error line of a file that failed meanwhile (a missing
    ``clip.mp4`` in ``bgremove clip.mp4 photo.jpg``) and the summary were lost. Only a real stderr on
    descriptor 2 is replaced (not a test runner's buffer)."""
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return
        sys.stderr.flush()
        copy = os.dup(2)
    except (OSError, ValueError):  # (io.UnsupportedOperation is both)
        return
    sys.stderr = open(copy, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)  # noqa: SIM115


# How long the command's end waits for threads that are not daemons before it leaves their stop to
# Python's own exit, in seconds.
_THREADS_WAIT = 1.0


def _exit(code: int | str | None) -> None:
    import threading

    def waited_for() -> list[threading.Thread]:  # the threads Python's exit would join
        return [thread for thread in threading.enumerate()
                if thread is not threading.current_thread() and not thread.daemon]

    # (a stopped -j run's executor thread winding down): a short wait here, then the usual exit if
    # one is still going
    deadline = time.monotonic() + _THREADS_WAIT
    for thread in waited_for():
        thread.join(max(0.0, deadline - time.monotonic()))
    others = waited_for()
    multiprocessing = sys.modules.get("multiprocessing")
    children = multiprocessing.active_children() if multiprocessing is not None else []
    # multiprocessing's own exit runs its finalizers: a stopped -j run's queues still hold semaphores,
    # and skipping their release makes its resource tracker warn of leaks after the run's last line
    finalizers = getattr(sys.modules.get("multiprocessing.util"), "_finalizer_registry", {})
    if "ray" in sys.modules or others or children or finalizers or not isinstance(code, (int, type(None))):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a closed pipe or stream: let Python report it as usual
        sys.exit(code)
    logging.shutdown()
    os._exit(code or 0)


def _check_batch_options(files: Sequence[Path], options: dict[str, Any]) -> bool:
    """Options that cannot go together; returns whether the input is stdin (``-``)."""
    if options["ray_address"] is not None and options["engine"] != "ray":
        raise click.UsageError("--ray-address applies only with --engine ray")
    if options["ray_address"] is not None:
        from .errors import UsageProblem
        from .ray_engine import check_address

        try:
            check_address(options["ray_address"])
        except UsageProblem as error:
            raise click.BadParameter(str(error), param_hint="'--ray-address'") from None
    if STDIN not in files:
        return False
    if len(files) > 1:
        raise click.UsageError("'-' (stdin) must be the only input")
    for name, flag in (("json_lines", "--json"), ("dry_run", "--dry-run"), ("output_dir", "--output-dir"),
                       ("jobs", "--jobs"), ("recursive", "--recursive")):
        if options[name] not in (None, False):
            raise click.UsageError(f"{flag} does not apply to '-' (one image from stdin to stdout)")
    if options["engine"] != "local":
        raise click.UsageError("--engine ray does not apply to '-' (one image from stdin to stdout)")
    if sys.stdout.isatty():
        raise click.UsageError("'-' writes the image to stdout, which is a terminal: redirect it, "
                               "e.g. bgremove - < photo.jpg > cut.png")
    return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (it may be swapped, e.g. by tests)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("bgremove")
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("bgremove: %(levelname)s: %(message)s"))
        logger.addHandler(handler)


def _refine_config(options: dict[str, Any]) -> RefineConfig:
    if options["fast"]:
        return RefineConfig.off()
    if options["quality"]:
        return RefineConfig.best()
    return RefineConfig()


def _composite_config(options: dict[str, Any]) -> CompositeConfig:
    chosen = [name for name in COMPOSITE_OPTIONS if options[name] not in (None, False)]
    if len(chosen) > 1:
        flags = " and ".join("--" + name.replace("_", "-") for name in chosen)
        raise click.UsageError(f"choose one background at a time, got {flags}")
    if options["bg_fit"] is not None and "bg" not in chosen:
        raise click.UsageError("--bg-fit applies only with --bg IMAGE|VIDEO")
    mode = {
        "transparent": CompositeMode.TRANSPARENT, "bg": CompositeMode.IMAGE, "bg_color": CompositeMode.COLOR,
        "blur": CompositeMode.BLUR, "desaturate": CompositeMode.DESATURATE, "mask_only": CompositeMode.MASK,
    }[chosen[0]] if chosen else CompositeMode.TRANSPARENT
    return CompositeConfig(
        mode=mode,
        background=options["bg"],
        fit=BgFit(options["bg_fit"] or "cover"),
        color=options["bg_color"] or (0, 0, 0),
        blur=options["blur"] or 45,
    )


def _split_formats(formats: Sequence[str]) -> tuple[str | None, str | None]:
    """``--format`` given up to twice: at most one image format and one video format."""
    chosen = [value.lower() for value in formats]
    images = [value for value in chosen if value in IMAGE_FORMATS]
    videos = [value for value in chosen if value in VIDEO_FORMATS]
    if len(set(images)) > 1 or len(set(videos)) > 1:
        raise click.BadParameter(f"give one image format and/or one video format, got {', '.join(chosen)}",
                                 param_hint="'--format'")
    return (images[0] if images else None), (videos[0] if videos else None)


def _check_output_format(mode: CompositeMode, image_format: str | None, video_format: str | None) -> None:
    from .errors import OutputError
    from .media import output_format

    try:
        output_format(mode, "PNG", image_format)
        if video_format == "mp4" and mode is CompositeMode.TRANSPARENT:
            raise OutputError("mp4 (H.264) cannot hold transparency; use --format webm or mov")
    except OutputError as error:
        raise click.BadParameter(str(error), param_hint="'--format'") from None


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _run(files: Sequence[Path], pipeline_options: dict[str, Any], output: OutputConfig, *, recursive: bool,
         quiet: bool, show_progress: bool, jobs: int | None = None, json_lines: bool = False,
         dry_run: bool = False, engine: str = "local", ray_address: str | None = None) -> int:
    import contextlib

    from .batch import interrupts_survive_finalizers
    from .errors import BgRemoveError, ModelUnavailable, UsageProblem
    from .media import find_inputs, remove_stale_temporaries
    from .pipeline import FileResult, Pipeline, plan_jobs

    started = time.perf_counter()
    inputs, not_media = find_inputs(files, recursive=recursive, skip_suffix=output.suffix or None)
    results: list[FileResult] = []
    for folder in files:
        # A folder argument that gives nothing is most likely a mistake in the script that named it.
        if folder.is_dir() and not any(item.argument == folder for item in inputs):
            results.append(FileResult(folder, None, "failed", f"{folder}: no images or videos found"))
            _report(results[-1], quiet=quiet, json_lines=json_lines)
    planned: list[Any] = []
    interrupted = False
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        with interrupts_survive_finalizers(), Pipeline(**pipeline_options, progress=show_progress) as pipeline:
            # the model loads while the videos are probed, when this process is the one to use it
            in_process = engine == "local" and jobs in (None, 1) and not dry_run
            planned = plan_jobs(inputs, pipeline.composite_config.mode, output,
                                video_ahead=pipeline.preload_video if in_process else None)
            if dry_run:
                return _dry_run(planned, output, json_lines=json_lines, quiet=quiet, not_media=len(not_media))
            remove_stale_temporaries(job.output for job in planned if job.output is not None)
            outcomes = _outcomes(pipeline, planned, pipeline_options, output, jobs=jobs, engine=engine,
                                 ray_address=ray_address, show_progress=show_progress)
            with (
                contextlib.closing(outcomes),
                _files_bar(len(planned)) if show_progress else contextlib.nullcontext(_NoBar()) as bar,
            ):
                for result in outcomes:
                    results.append(result)
                    bar.update(1)
                    _report(result, quiet=quiet, json_lines=json_lines)
    except UsageProblem as error:
        raise click.UsageError(_one_line(error)) from None
    except (ModelUnavailable, BgRemoveError) as error:
        raise click.ClickException(_one_line(error)) from None
    except KeyboardInterrupt:
        interrupted = True
        remove_stale_temporaries((job.output for job in planned if job.output is not None), mine=True)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    counts = {status: sum(result.status == status for result in results) for status in ("done", "skipped", "failed")}
    if not quiet or interrupted:
        parts = [f"{counts['done']} done", f"{counts['skipped']} skipped", f"{counts['failed']} failed"]
        if not_media:
            parts.append(f"{len(not_media)} not images or videos")
        ending = ", interrupted" if interrupted else ""
        click.echo(f"bgremove: {', '.join(parts)} in {time.perf_counter() - started:.1f} s{ending}", err=True)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _outcomes(pipeline: Any, planned: Sequence[Any], pipeline_options: dict[str, Any], output: OutputConfig, *,
              jobs: int | None, engine: str, ray_address: str | None, show_progress: bool) -> Iterator[Any]:
    """The results of the planned jobs from the engine asked for: this process, worker processes, Ray."""
    import logging

    from .batch import available_cores, needs_work, run_in_pool, run_in_process

    runnable = sum(needs_work(job, output) for job in planned)
    workers = available_cores() if jobs == 0 else jobs
    if engine == "ray":
        from .ray_engine import run_on_ray

        if runnable:
            pipeline.open()  # the model and labels are checked once here, not in every actor
            pipeline.close()
        return run_on_ray(planned, pipeline_options, output, address=ray_address, concurrency=workers)
    if (workers or 1) > 1 and runnable > 1:
        from .models import resolve

        # Found (or downloaded, once, with its progress bar) before the workers look for it.
        resolve(pipeline.segmenter_config.model, progress=show_progress)
        return run_in_pool(planned, pipeline_options, output, workers or 1,
                           log_level=logging.getLogger("bgremove").getEffectiveLevel())
    return run_in_process(pipeline, planned, output, _frame_bars if show_progress else None)


def _report(result: Any, *, quiet: bool, json_lines: bool) -> None:
    """One finished input: a JSON line on stdout with --json; errors, skips and video timings on stderr."""
    if json_lines:
        click.echo(json.dumps(_json_object(result.input, result.output, result.status, result.error,
                                           result.seconds, result.frames)))
        sys.stdout.flush()
    if result.status == "done" and "fps" in result.extra and not quiet:
        _say(f"bgremove: {result.input} -> {result.output}: {result.frames} frames in "
             f"{result.seconds:.1f} s ({result.extra['fps']:.1f} frames/s)")
    if result.status == "failed":
        _say(f"bgremove: error: {result.error}")
    elif result.status == "skipped" and not quiet:
        _say(f"bgremove: skipped: {result.error}")


def _say(line: str) -> None:
    """One line on stderr, above the progress bars where there are any."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # bars are made with tqdm, so without it imported there are none to keep clear of
        tqdm.tqdm.write(line, file=sys.stderr)
    else:
        click.echo(line, err=True)


class _NoBar:
    """What the files bar is without progress shown: tqdm itself takes 35 ms to import."""

    def update(self, count: int) -> None:
        pass


def _files_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="bgremove", unit="file", file=sys.stderr, dynamic_ncols=True)


def _json_object(input_path: Path, output_path: Path | None, status: str, error: str | None, seconds: float,
                 frames: int) -> dict[str, Any]:
    return {"input": str(input_path), "output": None if output_path is None else str(output_path), "status": status,
            "error": error, "seconds": round(seconds, 3), "frames": frames}


def _dry_run(planned: Sequence[Any], output: OutputConfig, *, json_lines: bool, quiet: bool, not_media: int) -> int:
    """Say what a run would do, on stdout, and touch nothing."""
    counts = {"planned": 0, "skipped": 0, "failed": 0}
    for job in planned:
        if job.error is not None:
            status, line, error = "failed", f"failed: {_one_line(job.error)}", _one_line(job.error)
        elif job.output.exists() and not output.overwrite:
            error = f"{job.input.path}: {job.output} exists; use --overwrite to redo it"
            status, line = "skipped", f"skipped: {job.input.path} -> {job.output} (exists)"
        else:
            status, line, error = "planned", f"{job.input.path} -> {job.output}", None
        counts[status] += 1
        if json_lines:
            click.echo(json.dumps(_json_object(job.input.path, job.output, status, error, 0.0, 0)))
        else:
            click.echo(line)
    if not quiet:
        extra = f", {not_media} not images or videos" if not_media else ""
        click.echo(f"bgremove: dry run: {counts['planned']} to write, {counts['skipped']} skipped, "
                   f"{counts['failed']} failed{extra}; nothing written", err=True)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _run_stdin(pipeline_options: dict[str, Any], output: OutputConfig, *, quiet: bool) -> int:
    """``-``: one image from stdin, the result to stdout, the summary on stderr."""
    from .errors import BgRemoveError, ModelUnavailable, UsageProblem
    from .pipeline import Pipeline
    from .stdio import process_bytes

    started = time.perf_counter()
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        data = sys.stdin.buffer.read()
        with Pipeline(**pipeline_options) as pipeline:
            encoded, _ = process_bytes(pipeline, data, output)
    except UsageProblem as error:
        raise click.UsageError(_one_line(error)) from None
    except ModelUnavailable as error:
        raise click.ClickException(_one_line(error)) from None
    except BgRemoveError as error:
        click.echo(f"bgremove: error: {_one_line(error)}", err=True)
        if not quiet:
            click.echo(f"bgremove: 0 done, 0 skipped, 1 failed in {time.perf_counter() - started:.1f} s", err=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        click.echo("bgremove: 0 done, 0 skipped, 0 failed, interrupted", err=True)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    sys.stdout.buffer.write(encoded)
    sys.stdout.flush()
    if not quiet:
        click.echo(f"bgremove: 1 done, 0 skipped, 0 failed in {time.perf_counter() - started:.1f} s", err=True)
    return EXIT_OK


def _frame_bars(path: Path, total: int) -> Any:
    """A progress bar in frames (with frames per second) for one video, under the files bar."""
    from tqdm import tqdm

    return tqdm(total=total or None, desc=path.name, unit="frame", leave=False, position=1, file=sys.stderr,
                dynamic_ncols=True)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops like Ctrl-C: the file being written is abandoned and its temporary removed."""
    raise KeyboardInterrupt


def _list_models() -> None:
    from .models import model_states

    rows = [("name", "file", "size", "where", "verified", "about")]
    for state in model_states():
        where = {"env": "BGREMOVE_MODEL_DIR", "cache": "cache"}.get(state.source or "", "missing")
        size = f"{(state.size or state.spec.size) / 1e6:.1f} MB"
        verified = "-" if state.verified is None else ("yes" if state.verified else "NO (sha256 differs)")
        rows.append((state.spec.name, state.spec.filename, size, where if state.path else "missing", verified,
                     state.spec.description))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _fetch_models(names: list[str], *, progress: bool) -> None:
    from .errors import BgRemoveError, UnknownSegmenter
    from .models import fetch_models

    try:
        fetched = fetch_models(names or None, progress=progress)
    except UnknownSegmenter as error:
        raise click.UsageError(_one_line(error)) from None
    except BgRemoveError as error:
        raise click.ClickException(_one_line(error)) from None
    for resolved in fetched:
        click.echo(f"{resolved.spec.name if resolved.spec else resolved.path.name}: {resolved.path}")
