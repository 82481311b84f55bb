"""Frames in, frames out: segmenter -> mask -> compositor; ``process_file`` ties reader, pipeline and writer.

Images and videos go through the same ``Pipeline``. A video gets a ``VideoSession`` of its own (a
VIDEO-mode segmenter, the temporal smoother, a looping background if ``--bg`` is a video), made when the
file starts and closed when it ends, so no state crosses from one file to the next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .compose import Compositor, MovingImageCompositor, Pixels, make_compositor
from .config import CompositeConfig, CompositeMode, Focus, MaskConfig, OutputConfig, RefineConfig, SegmenterConfig
from .errors import BgRemoveError, OutputError, OutputExists, UnsupportedMedia, UsageProblem
from .mask import MaskProcessor, resize_alpha
from .media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ImageInfo,
    InputFile,
    output_extension,
    output_format,
    output_path,
    probe_image,
    read_background,
    read_image,
    write_image,
)
from .models import MODELS
from .refine import Refiner
from .segmenters import Segmenter, create_segmenter
from .types import Alpha, Frame, Matte8, RGBImage, placeholder_pixels

if TYPE_CHECKING:
    from .video import LoopingVideo, VideoFormat, VideoInfo

logger = logging.getLogger(__name__)


# The person model that finds the head for models whose zoomed pass looks there (hair).
PERSON_MODEL = "selfie"


class Pipeline:
    """One model, one mask recipe, one refinement and one compositor, applied to any number of frames
    and files.

    The ``--bg`` image is read when the pipeline is made and the model when it is first needed (or
    ``open()`` is called), so a bad option fails before any input is touched. Close it when done.
    """

    def __init__(
        self,
        segmenter: SegmenterConfig | None = None,
        mask: MaskConfig | None = None,
        composite: CompositeConfig | None = None,
        *,
        refine: RefineConfig | None = None,
        refine_videos: bool = False,
        progress: bool = False,
    ) -> None:
        self.segmenter_config = segmenter or SegmenterConfig()
        self.mask_config = mask or MaskConfig()
        self.composite_config = composite or CompositeConfig()
        self.refine_config = refine or RefineConfig()
        # Videos get the refinement and the colour step only when asked (--quality): per frame they
        # cost about 3x the plain path, and smoothing alone already halves flicker (README, Quality).
        self.refine_videos = refine_videos
        self._progress = progress
        background = None
        self.background_video: Path | None = None
        if self.composite_config.mode is CompositeMode.IMAGE:
            if self.composite_config.background is None:
                raise UsageProblem("an image background needs a file: --bg IMAGE")
            background, self.background_video = _read_background(self.composite_config.background)
        self.compositor: Compositor = make_compositor(self.composite_config, background)
        self.video_compositor: Compositor = (
            self.compositor if refine_videos
            else make_compositor(dataclasses.replace(self.composite_config, decontaminate=False), background)
        )
        self._segmenter: Segmenter | None = None
        self._mask: MaskProcessor | None = None
        self._locator: Segmenter | None = None  # the person model, for a Focus.HEAD zoom
        self._spare_video_segmenter: Segmenter | None = None
        self._labels_checked = False
        self._preload: _Preload | None = None
        spec = MODELS.get(self.segmenter_config.model)
        self._refiner = Refiner(self.refine_config, spec.focus if spec else Focus.SUBJECT)

    def open(self, *, video: bool = False) -> Pipeline:
        """Load the model (and the person model when the zoom looks for a head), and check the labels
        to keep against it.

        ``video``: only for videos' frames, which go through a VIDEO-mode segmenter of their own
        (``VideoSession``). Unless videos are refined (their crops need this one), the labels are then
        checked with that segmenter, which the first session takes over, and the IMAGE-mode model is not
        loaded (about 12 MB and 50 ms that a run over videos does not need).
        """
        if video and not self._refines_videos and self._segmenter is None:
            if not self._labels_checked:
                preload, self._preload = self._preload, None
                segmenter = preload.take() if preload is not None else \
                    create_segmenter(self.segmenter_config, video=True, progress=self._progress)
                try:
                    self._mask_processor(segmenter)
                except BaseException:
                    segmenter.close()
                    raise
                self._spare_video_segmenter, self._labels_checked = segmenter, True
            return self
        if self._segmenter is None:
            segmenter = create_segmenter(self.segmenter_config, video=False, progress=self._progress)
            try:
                self._mask = self._mask_processor(segmenter)
                if self._refiner.focus is Focus.HEAD and self.refine_config.zoom:
                    self._locator = create_segmenter(
                        SegmenterConfig(PERSON_MODEL, device=self.segmenter_config.device,
                                        threads=self.segmenter_config.threads),
                        video=False, progress=self._progress,
                    )
            except BaseException:
                # MediaPipe's ImageSegmenter deadlocks if it is left to the garbage collector
                segmenter.close()
                raise
            self._segmenter, self._labels_checked = segmenter, True
        return self

    def preload_video(self) -> None:
        """Start making the VIDEO-mode segmenter (importing MediaPipe, loading the model) in a thread
        of its own, for ``open(video=True)`` to take when the first video comes. Loading runs in
        native code without the GIL, so it overlaps what the caller does meanwhile, such as probing the
        input (the CLI: 35-40 ms sooner to a video's first frame). Nothing happens where videos would
        not use that segmenter (refined videos) or it is already made; an error loading it is raised
        by ``open``."""
        if self._refines_videos or self._labels_checked or self._segmenter is not None or self._preload is not None:
            return
        self._preload = _Preload(lambda: create_segmenter(self.segmenter_config, video=True, progress=self._progress))

    @property
    def _refines_videos(self) -> bool:
        return self.refine_videos and self.refine_config != RefineConfig.off()

    def _video_segmenter(self) -> Segmenter:
        """A fresh VIDEO-mode segmenter: the one ``open(video=True)`` made for the label check if it is
        still unused, else a new one."""
        spare, self._spare_video_segmenter = self._spare_video_segmenter, None
        return spare if spare is not None else create_segmenter(self.segmenter_config, video=True)

    def _mask_processor(self, segmenter: Segmenter) -> MaskProcessor:
        name = self.segmenter_config.model
        spec = MODELS.get(name)
        return MaskProcessor(
            self.mask_config, segmenter.labels, spec.default_keep if spec else None, model_name=f"model '{name}'"
        )

    @property
    def labels(self) -> tuple[str, ...]:
        self.open()
        assert self._segmenter is not None
        return self._segmenter.labels

    def _probe(self, rgb: RGBImage) -> Alpha:
        assert self._segmenter is not None and self._mask is not None
        return self._mask.probability(self._segmenter.segment(Frame(rgb=rgb)))

    def _locate(self, rgb: RGBImage) -> Alpha:
        assert self._locator is not None
        confidences = self._locator.segment(Frame(rgb=rgb)).confidences
        return np.clip(confidences[-1], 0.0, 1.0)

    @property
    def _head_locator(self) -> Callable[[RGBImage], Alpha] | None:
        """The person model's probe for a zoom around the head, when the model wants one."""
        return self._locate if self._locator is not None else None

    def probability(self, frame: Frame) -> Alpha:
        """The frame's foreground probability after refinement, before threshold and feather
        (H x W float32 in [0, 1])."""
        self.open()
        return self._refiner.probability(frame.rgb, self._probe, self._head_locator)

    def passes(self, frame: Frame, first: Callable[[], Alpha] | None = None) -> tuple[Alpha, float]:
        """The refinement's model passes for ``frame`` (see ``Refiner.passes``), before the edge step."""
        self.open()
        return self._refiner.passes(frame.rgb, self._probe, self._head_locator, first)

    def alpha(self, frame: Frame) -> Alpha:
        """The frame's alpha matte (H x W float32 in [0, 1])."""
        probability = self.probability(frame)
        assert self._mask is not None
        return self._mask.finish(probability, frame.width, frame.height)

    def matte(self, frame: Frame) -> Alpha | Matte8:
        """``alpha``, or the same matte in 8 bits (H x W uint8, 0-255: what compositors and outputs
        need, a quarter of the memory) where no threshold or feather needs it in floats."""
        if self.mask_config.needs_float_matte:
            return self.alpha(frame)
        self.open()
        return self._refiner.matte8(frame.rgb, self._probe, self._head_locator)

    def composite(self, frame: Frame, alpha: Alpha | Matte8) -> Pixels:
        """The output for a frame and its matte (the compositor, which keeps no state between calls
        but a cache of the fitted background: safe to call from several threads at once)."""
        return self.compositor(frame, alpha)

    def process_frame(self, frame: Frame) -> Pixels:
        """One frame through segmenter, mask and compositor."""
        return self.composite(frame, self.matte(frame))

    def process_frames(self, frames: Iterable[Frame]) -> Iterator[Pixels]:
        """Independent images, one by one (for the frames of one video, use ``video_session``)."""
        for frame in frames:
            yield self.process_frame(frame)

    def video_session(self, *, start: float = 0.0) -> VideoSession:
        """Fresh per-video state for the frames of one video; ``start`` is where its output begins
        (a video background starts there)."""
        self.open(video=True)
        return VideoSession(self, start=start)

    def close(self) -> None:
        preload, self._preload = self._preload, None
        if preload is not None:
            preload.discard()
        if self._spare_video_segmenter is not None:
            self._spare_video_segmenter.close()
            self._spare_video_segmenter = None
        if self._locator is not None:
            self._locator.close()
            self._locator = None
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Preload:
    """``make()`` run in a daemon thread; ``take`` waits for its segmenter (or raises its error),
    ``discard`` waits and closes it unused (MediaPipe's segmenters must be closed, not left to the GC)."""

    def __init__(self, make: Callable[[], Segmenter]) -> None:
        self._make = make
        self._segmenter: Segmenter | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bgremove-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._segmenter = self._make()
        except BaseException as error:  # raised by take, in the caller's thread
            self._error = error

    def take(self) -> Segmenter:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._segmenter is not None
        segmenter, self._segmenter = self._segmenter, None
        return segmenter

    def discard(self) -> None:
        self._thread.join()
        if self._segmenter is not None:
            self._segmenter.close()
            self._segmenter = None


def _read_background(path: Path) -> tuple[RGBImage, Path | None]:
    """The ``--bg`` file as a still picture, and its path again when it is a video (which moves behind
    videos and gives its first frame to images)."""
    try:
        return read_background(path), None
    except UnsupportedMedia as image_error:
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise UsageProblem(f"--bg {image_error}") from None
    from .video import first_frame

    try:
        return first_frame(path), path
    except BgRemoveError as error:
        raise UsageProblem(f"--bg {error}") from None


# The refined probability is smoothed over time at this long side at most: the smoother holds 2 x
# (2 * smooth + 1) planes, 0.5 GB at 4K frame size; the edge step puts the detail back afterwards.
SMOOTHING_LONG_SIDE = 640


def _at_most(probability: Alpha, long_side: int) -> Alpha:
    height, width = probability.shape
    scale = long_side / max(height, width)
    if scale >= 1:
        return probability
    return resize_alpha(probability, max(1, round(width * scale)), max(1, round(height * scale)))


def _cut_picture(frame: Frame) -> RGBImage | Matte8:
    """What cut detection reads of a frame: its decoded luma where the model's picture is only made
    for the frames the model runs on (``Frame.make_preview``), else the model's picture."""
    if frame.yuv is not None and frame.make_preview is not None:
        return frame.yuv.y
    return frame.model_rgb


class VideoSession:
    """The state of one video: a VIDEO-mode segmenter (increasing timestamps), the temporal smoother and
    the compositor (with its own looping background video, if any). Make one per file; close it after.
    """

    def __init__(self, pipeline: Pipeline, *, start: float = 0.0) -> None:
        from .temporal import TemporalSmoother

        self.pipeline = pipeline
        self._segmenter = pipeline._video_segmenter()
        self._refine = pipeline._refines_videos
        self._background: LoopingVideo | None = None
        try:
            self._mask = pipeline._mask_processor(self._segmenter)
            self._smoother: TemporalSmoother[Frame] = TemporalSmoother(
                pipeline.mask_config.smooth, stride=pipeline.mask_config.segment_every)
            self.compositor = pipeline.video_compositor
            if pipeline.background_video is not None:
                from .video import LoopingVideo

                self._background = LoopingVideo(pipeline.background_video)
                loop = self._background
                self.compositor = MovingImageCompositor(
                    lambda timestamp: loop.frame_at(timestamp - start), pipeline.composite_config.fit,
                    pipeline.composite_config.decontaminate and pipeline.refine_videos,
                )
        except BaseException:
            self.close()
            raise

    def mattes(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, Alpha]]:
        """Each frame with its alpha matte, in order; with smoothing on, ``smooth`` frames behind.

        Without refinement, one pass of the VIDEO-mode segmenter is smoothed at model resolution. With
        it, the merged passes are smoothed at frame size and the edge step runs on the smoothed
        probability, so that the outline follows each frame's own colours. The plain whole-frame pass
        is the VIDEO-mode segmenter's; crops and mirrors go through the pipeline's IMAGE-mode one (the
        models served keep no state between VIDEO-mode frames: both modes give identical confidences,
        checked on DAVIS).
        """
        for frame, probability, scale in self.probabilities(frames):
            yield frame, self.finish(frame, probability, scale)

    def probabilities(self, frames: Iterable[Frame], *,
                      keep_rgb: bool = True) -> Iterator[tuple[Frame, Alpha, float]]:
        """Each frame with its smoothed foreground probability (at the model's resolution without
        refinement: small, so cheap to queue between threads) and the scale the edge step needs: the
        first half of ``mattes``.

        ``keep_rgb=False``: frames that carry their decoded planes lose their RGB pixels once segmented
        (``rgb`` becomes a placeholder of the same shape): for compositing on the planes, which needs
        none, so the frames waiting in the smoother and the queues take a third of the memory. The edge
        step of refinement needs them: with refinement, they are kept.
        """
        keep_rgb = keep_rgb or self._refine
        # the scale of the latest refined pass: frames without a pass of their own get their
        # neighbours' probability, and the edge step the scale of the latest pass
        scale = [0.0]

        for frame in frames:

            def first(frame: Frame = frame) -> Alpha:
                # (the smoother may run a skipped frame's pass after a later frame's: the models served
                # keep no state between VIDEO-mode frames, and the segmenter keeps timestamps increasing)
                return self._mask.probability(self._segmenter.segment(frame))

            def refined(frame: Frame = frame, first: Callable[[], Alpha] = first) -> Alpha:
                probability, scale[0] = self.pipeline.passes(frame, first)
                return _at_most(probability, SMOOTHING_LONG_SIDE)

            # (the probes hold the frame as it came, for a pass the smoother may run later)
            item = frame if keep_rgb or frame.yuv is None else \
                replace(frame, rgb=placeholder_pixels(frame.rgb.shape), preview=None, make_preview=None)
            probe = refined if self._refine else first
            for ready, smoothed in self._smoother.push(item, probe, _cut_picture(frame)):
                yield ready, smoothed, scale[0]
        for ready, smoothed in self._smoother.flush():
            yield ready, smoothed, scale[0]

    @property
    def passes(self) -> int:
        """How many frames the model has run on so far (fewer than the frames where it was skipped)."""
        return self._smoother.passes

    def preview_size(self, width: int, height: int) -> tuple[int, int] | None:
        """For frames composited on their planes: the size of the ``Frame.preview`` that can stand in
        for a frame's full-size RGB (the model's input), or None where the full-size pixels are needed
        (refinement's crops and edge step, or a model fed the frame as it is)."""
        return None if self._refine else self._segmenter.model_size(width, height)

    def finish(self, frame: Frame, probability: Alpha, scale: float = 0.0) -> Alpha:
        """The frame-sized matte from a smoothed probability (the second half of ``mattes``)."""
        if self._refine:
            probability = self.pipeline._refiner.edges(
                frame.rgb, resize_alpha(probability, frame.width, frame.height), scale)
        return self._mask.finish(probability, frame.width, frame.height)

    def matte(self, frame: Frame, probability: Alpha, scale: float = 0.0) -> Alpha | Matte8:
        """``finish``, in 8 bits where nothing needs floats (``MaskProcessor.matte``): the edge step of
        refinement works on the float probability at frame size."""
        if self._refine:
            return self.finish(frame, probability, scale)
        return self._mask.matte(probability, frame.width, frame.height)

    def process(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, Pixels]]:
        """Each frame with its composited output."""
        for frame, alpha in self.mattes(frames):
            yield frame, self.compositor(frame, alpha)

    def close(self) -> None:
        self._segmenter.close()
        if self._background is not None:
            self._background.close()
            self._background = None

    def __enter__(self) -> VideoSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress(Protocol):
    """What ``process_file`` reports a video's progress to (the CLI puts a tqdm bar behind it)."""

    def update(self, frames: int) -> None: ...

    def close(self) -> None: ...


# (input path, expected number of frames) -> a Progress for that file
ProgressFactory = Callable[[Path, int], Progress]


@dataclass
class Job:
    """One input and where its output goes; ``error`` set when it cannot be planned.

    ``format`` is the Pillow format name for an image, the ``--format`` name (mp4, webm, mov) for a
    video; ``video`` holds what probing the video found, ``image`` what reading the image found (its
    JPEG chroma layout, which a JPEG output keeps).
    """

    input: InputFile
    output: Path | None = None
    format: str | None = None
    error: BgRemoveError | None = None
    kind: str = "image"  # or "video"
    video: VideoInfo | None = None
    image: ImageInfo | None = None


@dataclass
class FileResult:
    """What happened to one input (the CLI reports these)."""

    input: Path
    output: Path | None
    status: str  # "done", "skipped" or "failed"
    error: str | None = None
    seconds: float = 0.0
    frames: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def plan_jobs(inputs: Sequence[InputFile], mode: CompositeMode, config: OutputConfig,
              video_ahead: Callable[[], None] | None = None) -> list[Job]:
    """Decide every output name before anything is written.

    An input that cannot be read, an output that would replace an input, and a second input that
    would produce the same output as an earlier one each get an error; the rest go ahead.
    ``video_ahead`` is called before probing an input named like a video whose output would be written
    (``Pipeline.preload_video``: the model loads while the video is probed).
    """
    input_paths = {job_input.path.resolve() for job_input in inputs if job_input.path.exists()}
    claimed: dict[Path, Path] = {}
    seen_inputs: set[Path] = set()
    jobs: list[Job] = []
    for job_input in inputs:
        job = Job(job_input)
        jobs.append(job)
        if video_ahead is not None and _video_output_missing(job_input, mode, config):
            video_ahead()
        try:
            info = probe_media(job_input.path)
            if isinstance(info, ImageInfo):
                if config.format is None and config.video_format is not None:
                    raise OutputError(f"{job_input.path}: is an image and --format {config.video_format} is a "
                                      "video format; add --format png, jpg or webp for images")
                fmt = output_format(mode, info.format, config.format)
                extension = output_extension(fmt, job_input.path)
            else:
                video_format = _video_format(job_input.path, mode, config)
                job.kind, job.video, fmt, extension = "video", info, video_format.name, video_format.extension
            target = output_path(job_input.path, extension, config, job_input.root)
        except BgRemoveError as error:
            job.error = error
            continue
        resolved_input = job_input.path.resolve()
        resolved_target = target.resolve()
        if resolved_input in seen_inputs:
            job.error = UsageProblem(f"{job_input.path}: given more than once; processed the first time only")
        elif resolved_target in input_paths:
            job.error = OutputError(f"{job_input.path}: output {target} would overwrite an input; use --suffix or -o")
        elif resolved_target in claimed:
            earlier = claimed[resolved_target]
            job.error = OutputError(f"{job_input.path}: output {target} is also the output of {earlier}")
        else:
            claimed[resolved_target] = job_input.path
            job.output, job.format = target, fmt
        seen_inputs.add(resolved_input)
    return jobs


def _video_output_missing(job_input: InputFile, mode: CompositeMode, config: OutputConfig) -> bool:
    """Whether an input named like a video would have its output written, as far as its name says."""
    if job_input.path.suffix.lower() not in VIDEO_EXTENSIONS:
        return False
    try:
        extension = _video_format(job_input.path, mode, config).extension
        return config.overwrite or not output_path(job_input.path, extension, config, job_input.root).exists()
    except BgRemoveError:
        return False


# Picture formats Pillow may lack a plugin for, which FFmpeg would open as a one-frame "video".
_STILL_ONLY = frozenset({".heic", ".heif", ".avif", ".jxl", ".svg", ".ico", ".psd", ".dng", ".cr2", ".nef"})


def probe_media(path: Path) -> ImageInfo | VideoInfo:
    """What a file is, by its content: an image Pillow reads, else a video FFmpeg reads.

    A file named like an image is only ever tried as an image, so a corrupt JPEG is reported as one. A
    file named like a video is tried as a video first (Pillow's loading and trying every image format
    on it took 43 ms), then as an image, and reported as the video it claims to be.
    """
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        from .video import probe_video

        try:
            return probe_video(path)
        except UnsupportedMedia as video_error:
            try:
                return probe_image(path)
            except UnsupportedMedia:
                raise video_error from None
    try:
        return probe_image(path)
    except UnsupportedMedia:
        suffix = path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS or suffix in _STILL_ONLY or not path.is_file() or path.stat().st_size == 0:
            raise
    from .video import probe_video

    return probe_video(path)


def _video_format(path: Path, mode: CompositeMode, config: OutputConfig) -> VideoFormat:
    from .video import video_output_format

    if config.video_format is None and config.format is not None:
        raise OutputError(f"{path}: is a video and --format {config.format} is an image format; "
                          "add --format mp4, webm or mov for videos")
    return video_output_format(mode, config.video_format)


def process_file(
    pipeline: Pipeline, job: Job, config: OutputConfig, progress: ProgressFactory | None = None
) -> FileResult:
    """Read one input, run the pipeline, write the output atomically. Raises ``BgRemoveError``.

    ``progress`` is called once per video with the input and its expected frame count; what it returns
    gets ``update(frames)`` calls as frames are written, and ``close()`` at the end.
    """
    started = time.perf_counter()
    if job.kind == "video":
        check_job(job, config)
        return _process_video(pipeline, job, config, progress, started)
    frame = read_job_image(job, config)
    return write_job_image(job, config, pipeline.process_frame(frame), started)


def check_job(job: Job, config: OutputConfig) -> None:
    """Raise what stops ``job`` before any work: its planning error, or an output to leave alone."""
    if job.error is not None:
        raise job.error
    assert job.output is not None and job.format is not None
    if job.output.exists() and not config.overwrite:
        raise OutputExists(f"{job.input.path}: {job.output} exists; use --overwrite to redo it")


def read_job_image(job: Job, config: OutputConfig) -> Frame:
    """The first third of ``process_file`` for an image: its checks, then its pixels (and ``job.image``,
    for ``write_job_image``)."""
    check_job(job, config)
    frame, job.image = read_image(job.input.path)
    return frame


def write_job_image(job: Job, config: OutputConfig, pixels: Pixels, started: float) -> FileResult:
    """The last third of ``process_file`` for an image: encode and write ``pixels`` atomically."""
    assert job.output is not None and job.format is not None
    write_image(job.output, pixels, job.format, jpeg_quality=config.jpeg_quality,
                subsampling=job.image.subsampling if job.image is not None else None)
    return FileResult(job.input.path, job.output, "done", seconds=time.perf_counter() - started, frames=1)


def _expected_frames(info: VideoInfo, start: float, end: float | None) -> int:
    if info.duration <= 0:
        return info.frames
    stop = info.duration if end is None else min(end, info.duration)
    return max(0, min(info.frames, math.ceil((stop - start) * float(info.fps) - 1e-6)))


_NO_PIXELS: RGBImage = np.zeros((0, 0, 3), dtype=np.uint8)


@contextlib.contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    """OpenCV's own thread pool at ``count`` threads for the duration (it is one pool per process).

    A video keeps the cores busy with its four stages already (decoding, segmentation, compositing,
    encoding): OpenCV splitting a resize or a blend over threads of its own only waits for busy cores,
    6% more CPU for the same wall time (10 s of 720p, --blur 45)."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


# How much nicer than the encoder the decoding and segmentation threads run (Linux). On two cores they
# otherwise take turns with x264's threads while the encoder, the stage the rest waits for, waits for
# CPU. Medians of 6-12 interleaved runs, nice 5 against 0: 720p --blur 45 -5%, 1080p --blur 45 -6%,
# 720p --bg -3% wall time, the same CPU time (10 and 19 were no better).
_AHEAD_NICE = 5

# Frames queued between the video's stages. With one, both cores stood idle 9-11% of a 720p --blur 45
# run's steady part (/proc/stat): x264's calling thread works alone between its slices while the stages
# before it wait to hand on their frame. With three, 7-11%: 720p --blur 45 took 0.97-0.98 of the time
# (10 interleaved runs; 0.97 in an earlier stop's 4 pairs) and --bg 0.92 (4), for 9 MB more. At 1080p
# three made it slower (1.11 of the time, 6 runs, and 9% more CPU, 22 MB more): the frames in flight
# no longer fit the caches. So three up to 720p's pixels, one above.
_QUEUED_PIXELS = 1280 * 720


def _queued_frames(width: int, height: int) -> int:
    return 3 if width * height <= _QUEUED_PIXELS else 1


def _process_video(
    pipeline: Pipeline, job: Job, config: OutputConfig, progress: ProgressFactory | None, started: float
) -> FileResult:
    from .stages import Drain, Prefetch
    from .video import VIDEO_FORMATS, VideoReader, open_video_writer, yuv_passthrough

    info, output = job.video, job.output
    assert info is not None and output is not None and job.format is not None
    cut = config.video
    if cut.end is not None and cut.end <= cut.start:
        raise UsageProblem(f"--end {cut.end:g} must be after --start {cut.start:g}")
    if info.duration > 0 and cut.start >= info.duration:
        raise UnsupportedMedia(f"{job.input.path}: --start {cut.start:g} s is past the end ({info.duration:.2f} s)")
    mode = pipeline.composite_config.mode
    fmt = VIDEO_FORMATS[job.format]
    # Compositors that can work on the decoded planes keep the subject's pixels exactly and skip both
    # full-size conversions; the output then keeps the input's colour matrix.
    # the session's compositor is of the same kind, with the same colour step
    on_planes = getattr(pipeline.video_compositor, "on_planes", False)
    colorspace = yuv_passthrough(info, fmt, mode) if on_planes else None
    bar = progress(job.input.path, _expected_frames(info, cut.start, cut.end)) if progress else None
    frames = 0
    queued = _queued_frames(info.width, info.height)
    try:
        with (
            opencv_threads(1),
            pipeline.video_session(start=cut.start) as session,
            # on planes, frames are decoded to RGB only at the model's input size
            VideoReader(job.input.path, info, keep_yuv=colorspace is not None,
                        preview=session.preview_size if colorspace is not None else None) as reader,
            open_video_writer(output, fmt, info, mode, cut, colorspace) as writer,
            # decoding, segmentation (with smoothing) and encoding each run in a thread of their own,
            # the frame-sized matte and compositing in this one. The encoder is the stage the others
            # wait for: the two ahead of it yield the cores to it (_AHEAD_NICE), and short queues
            # let each stage run ahead while x264's threads leave a core free (_queued_frames).
            Prefetch(reader.frames(cut.start, cut.end), depth=queued, name="bgremove-decode",
                     nice=_AHEAD_NICE) as decoded,
            Prefetch(session.probabilities(decoded, keep_rgb=colorspace is None), depth=queued,
                     name="bgremove-segment", nice=_AHEAD_NICE) as segmented,
            # (the encoder starts while the first frame is decoded and segmented)
            Drain(lambda item: writer.write(*item), depth=queued, name="bgremove-encode",
                  start=writer.open_encoder) as encoder,
        ):
            to_planes = session.compositor.planes if colorspace is not None else None  # type: ignore[attr-defined]
            for frame, probability, scale in segmented:
                alpha = session.matte(frame, probability, scale)
                planes = to_planes(frame, alpha) if to_planes is not None else None
                pixels = planes if planes is not None else session.compositor(frame, alpha)
                # the encoder needs the frame's timing, not its decoded pixels: those are freed now
                encoder.put((pixels, replace(frame, rgb=_NO_PIXELS, alpha=None)))
                frames += 1
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    return FileResult(job.input.path, output, "done", seconds=seconds, frames=frames,
                      extra={"fps": frames / seconds if seconds > 0 else 0.0})


def remove_background(
    image: np.ndarray,
    *,
    model: str = "selfie",
    keep: Sequence[str] | None = None,
    threshold: float | None = None,
    composite: CompositeConfig | None = None,
) -> Pixels:
    """Remove the background of one RGB uint8 image held in memory (RGBA out by default).

    For many images, make one ``Pipeline`` and call ``process_frame`` instead: this loads the model
    each time.
    """
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    alpha = np.ascontiguousarray(image[..., 3]) if image.ndim == 3 and image.shape[2] == 4 else None
    mask = MaskConfig(keep=tuple(keep) if keep else None, threshold=threshold)
    with Pipeline(SegmenterConfig(model=model), mask, composite) as pipeline:
        return pipeline.process_frame(Frame(rgb=rgb, alpha=alpha))
