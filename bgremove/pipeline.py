"""Frames in, frames out: segmenter -> mask -> compositor; ``process_file`` ties reader, pipeline and writer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compose import Compositor, Pixels, make_compositor
from .config import CompositeConfig, CompositeMode, Focus, MaskConfig, OutputConfig, RefineConfig, SegmenterConfig
from .errors import BgRemoveError, OutputError, OutputExists, UsageProblem
from .mask import MaskProcessor
from .media import InputFile, output_extension, output_format, output_path, probe_image, read_background, read_image, write_image
from .models import MODELS
from .refine import Refiner
from .segmenters import Segmenter, create_segmenter
from .types import Alpha, Frame, RGBImage

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
        progress: bool = False,
    ) -> None:
        self.segmenter_config = segmenter or SegmenterConfig()
        self.mask_config = mask or MaskConfig()
        self.composite_config = composite or CompositeConfig()
        self.refine_config = refine or RefineConfig()
        self._progress = progress
        background = None
        if self.composite_config.mode is CompositeMode.IMAGE:
            if self.composite_config.background is None:
                raise UsageProblem("an image background needs a file: --bg IMAGE")
            try:
                background = read_background(self.composite_config.background)
            except BgRemoveError as error:
                raise UsageProblem(f"--bg {error}") from None
        self.compositor: Compositor = make_compositor(self.composite_config, background)
        self._segmenter: Segmenter | None = None
        self._mask: MaskProcessor | None = None
        self._locator: Segmenter | None = None  # the person model, for a Focus.HEAD zoom
        spec = MODELS.get(self.segmenter_config.model)
        self._refiner = Refiner(self.refine_config, spec.focus if spec else Focus.SUBJECT)

    def open(self) -> Pipeline:
        """Load the model (and the person model when the zoom looks for a head), and check the labels
        to keep against it."""
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
            self._segmenter = segmenter
        return self

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

    def probability(self, frame: Frame) -> Alpha:
        """The frame's foreground probability after refinement, before threshold and feather
        (H x W float32 in [0, 1])."""
        self.open()
        locate = self._locate if self._locator is not None else None
        return self._refiner.probability(frame.rgb, self._probe, locate)

    def alpha(self, frame: Frame) -> Alpha:
        """The frame's alpha matte (H x W float32 in [0, 1])."""
        probability = self.probability(frame)
        assert self._mask is not None
        return self._mask.finish(probability)

    def process_frame(self, frame: Frame) -> Pixels:
        """One frame through segmenter, mask and compositor."""
        return self.compositor(frame, self.alpha(frame))

    def process_frames(self, frames: Iterable[Frame]) -> Iterator[Pixels]:
        for frame in frames:
            yield self.process_frame(frame)

    def close(self) -> None:
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


@dataclass
class Job:
    """One input and where its output goes; ``error`` set when it cannot be planned."""

    input: InputFile
    output: Path | None = None
    format: str | None = None
    error: BgRemoveError | None = None


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


def plan_jobs(inputs: Sequence[InputFile], mode: CompositeMode, config: OutputConfig) -> list[Job]:
    """Decide every output name before anything is written.

    An input that cannot be read, an output that would replace an input, and a second input that
    would produce the same output as an earlier one each get an error; the rest go ahead.
    """
    input_paths = {job_input.path.resolve() for job_input in inputs if job_input.path.exists()}
    claimed: dict[Path, Path] = {}
    seen_inputs: set[Path] = set()
    jobs: list[Job] = []
    for job_input in inputs:
        job = Job(job_input)
        jobs.append(job)
        try:
            info = probe_image(job_input.path)
            fmt = output_format(mode, info.format, config.format)
            target = output_path(job_input.path, output_extension(fmt, job_input.path), config, job_input.root)
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
            job.error = OutputError(f"{job_input.path}: output {target} is also the output of {claimed[resolved_target]}")
        else:
            claimed[resolved_target] = job_input.path
            job.output, job.format = target, fmt
        seen_inputs.add(resolved_input)
    return jobs


def process_file(pipeline: Pipeline, job: Job, config: OutputConfig) -> FileResult:
    """Read one input, run the pipeline, write the output atomically. Raises ``BgRemoveError``."""
    started = time.perf_counter()
    if job.error is not None:
        raise job.error
    assert job.output is not None and job.format is not None
    if job.output.exists() and not config.overwrite:
        raise OutputExists(f"{job.input.path}: {job.output} exists; use --overwrite to redo it")
    frame, _ = read_image(job.input.path)
    pixels = pipeline.process_frame(frame)
    write_image(job.output, pixels, job.format, jpeg_quality=config.jpeg_quality)
    return FileResult(job.input.path, job.output, "done", seconds=time.perf_counter() - started, frames=1)


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
