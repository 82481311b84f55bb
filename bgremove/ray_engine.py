"""Ray Data engine: the same pipeline over a Ray Dataset of files, on a local Ray or a cluster.

``pip install 'bgremove[ray]'``. Ray is imported only when this engine runs.

The driver does what the CLI does before any file is processed: finds the inputs, plans every output
name (same naming, mirroring and collision rules), settles the jobs with nothing to do (existing
outputs, unreadable inputs) and removes stale temporaries. The rest become a Ray Dataset of rows
(input, output, format) that ``map_batches`` sends to a pool of actors of ``SegmentBatch``, a callable
class whose ``__init__`` opens one ``Pipeline`` per actor; ``__call__`` reads, processes and writes each
file of its batch atomically (``process_file``) and returns one status row per file.

Every node reads the inputs and writes the outputs at the same paths, so on a cluster they must sit on
a shared file system (NFS, a mounted bucket) mounted at the same place on every node.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import CompositeConfig, MaskConfig, OutputConfig, SegmenterConfig
from .errors import BgRemoveError, UsageProblem
from .media import InputFile
from .pipeline import FileResult, Job, Pipeline, plan_jobs

logger = logging.getLogger(__name__)

RAY_MISSING = "Ray is not installed: pip install 'bgremove[ray]'"


def remove_backgrounds_ray(
    inputs: Iterable[str | Path],
    output_dir: str | Path | None = None,
    *,
    segmenter: SegmenterConfig | None = None,
    mask: MaskConfig | None = None,
    composite: CompositeConfig | None = None,
    output: OutputConfig | None = None,
    recursive: bool = False,
    ray_address: str | None = None,
    concurrency: int | None = None,
    batch_size: int = 1,
    runtime_env: dict[str, Any] | None = None,
) -> list[FileResult]:
    """Remove the background of files, folders and glob patterns with Ray Data; one result per input.

    ``output_dir`` (or ``output.output_dir``) receives the outputs, mirroring the input tree; None
    writes them next to the inputs. ``ray_address`` joins a running cluster (``"auto"`` on one of
    its nodes, as in a ``ray job submit`` entry point, or ``"HOST:6379"``); None starts a local Ray,
    unless one is already running in this process (``ray.init(...)`` before the call), which is then
    used and left running. Ray Client addresses (``ray://``) are refused: Ray Data needs a driver on
    the cluster.
    ``concurrency`` is the number of actors (default: the cluster's CPUs), each with one model.

    Raises ``UsageProblem`` or ``ModelUnavailable`` for a problem with the request as a whole (unknown
    model or label, Ray missing); problems of single files are in their ``FileResult``.
    """
    from .media import find_inputs, remove_stale_temporaries

    check_address(ray_address)
    config = output or OutputConfig()
    if output_dir is not None:
        config = dataclasses.replace(config, output_dir=Path(output_dir))
    found, _ = find_inputs([Path(item) for item in inputs], recursive=recursive,
                           skip_suffix=config.suffix or None)
    pipeline_options: dict[str, Any] = {"segmenter": segmenter, "mask": mask, "composite": composite}
    with Pipeline(**pipeline_options) as pipeline:
        jobs = plan_jobs(found, pipeline.composite_config.mode, config)
        pipeline.open()  # the model and labels are checked here, not in every actor
    remove_stale_temporaries(job.output for job in jobs if job.output is not None)
    return list(run_on_ray(jobs, pipeline_options, config, address=ray_address, concurrency=concurrency,
                           batch_size=batch_size, runtime_env=runtime_env))


def run_on_ray(
    jobs: Sequence[Job],
    pipeline_options: dict[str, Any],
    config: OutputConfig,
    *,
    address: str | None = None,
    concurrency: int | None = None,
    batch_size: int = 1,
    runtime_env: dict[str, Any] | None = None,
    cpus_per_actor: float = 1,
) -> Iterator[FileResult]:
    """Planned jobs through Ray Data actors; results as they come (jobs with nothing to do first)."""
    from .batch import settle_done

    check_address(address)
    todo: list[Job] = []
    yield from settle_done(jobs, config, todo)
    if not todo:
        return
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageProblem(RAY_MISSING) from None
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, address, runtime_env)
    try:
        _quiet_ray(ray)
        available = int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor) or 1
        actors = max(1, min(concurrency or available, len(todo)))
        # Actors run in other folders (on other machines): they get absolute paths, results are
        # reported with the paths as given.
        by_input = {_absolute(job.input.path): job for job in todo}
        rows = [_row(job) for job in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // batch_size))
        processed = dataset.map_batches(
            SegmentBatch,
            fn_constructor_kwargs={"pipeline_options": pipeline_options, "config": config,
                                   "threads": max(1, int(cpus_per_actor)),
                                   "log_level": logging.getLogger("bgremove").getEffectiveLevel()},
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=batch_size,
            num_cpus=cpus_per_actor,
            batch_format="numpy",
        )
        reported: set[str] = set()
        try:
            for row in processed.iter_rows():
                reported.add(str(row["input"]))
                yield _result(row, by_input[str(row["input"])])
        except Exception as error:  # the dataset failed as a whole: the files not reported failed with it
            from .batch import one_line

            logger.debug("Ray Data failed", exc_info=True)
            reason = one_line(error).split(" Traceback")[0][:300]
            for job in todo:
                if _absolute(job.input.path) not in reported:
                    yield FileResult(job.input.path, None, "failed",
                                     f"{job.input.path}: not processed: Ray failed: {reason}")
    finally:
        if started_here:
            ray.shutdown()
            # actors killed by the shutdown (an interrupt) may have left temporaries
            from .media import remove_stale_temporaries

            remove_stale_temporaries(job.output for job in todo if job.output is not None)


def check_address(address: str | None) -> None:
    """Refuse a Ray Client address early: Ray Data's executor needs a real driver on the cluster."""
    if address is not None and address.startswith("ray://"):
        raise UsageProblem(
            f"Ray Data does not run through Ray Client ({address}): run bgremove on a node of the cluster "
            "with --ray-address auto, or submit it as a job: ray job submit --address http://HEAD:8265 -- "
            "bgremove ... --engine ray --ray-address auto")


def _init_ray(ray: Any, address: str | None, runtime_env: dict[str, Any] | None) -> None:
    # Actors' own output (their logging included) reaches this terminal only with -v: each file's
    # result, errors included, comes back in its row anyway.
    verbose = logging.getLogger("bgremove").isEnabledFor(logging.DEBUG)
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": verbose}
    if runtime_env is not None:
        options["runtime_env"] = runtime_env
    if address is None:
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UsageProblem(f"cannot join the Ray cluster at {address or 'local'}: {reason}") from None


def _quiet_ray(ray: Any) -> None:
    """Ray Data reports its plan and progress through logging at INFO (and warns that progress bars
    are off): our CLI has its own bar, and the driver's stderr is for bgremove's messages."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _absolute(path: Path) -> str:
    return os.path.abspath(path)


def _row(job: Job) -> dict[str, str]:
    assert job.output is not None and job.format is not None
    return {"input": _absolute(job.input.path), "root": _absolute(job.input.root) if job.input.root else "",
            "output": _absolute(job.output), "format": job.format, "kind": job.kind}


def _result(row: dict[str, Any], job: Job) -> FileResult:
    """A result row as a FileResult naming the input and output as the job does; messages name the
    absolute paths the actor saw."""
    status = str(row["status"])
    output = job.output if status in ("done", "skipped") else None
    return FileResult(job.input.path, output, status, str(row["error"]) or None, float(row["seconds"]),
                      int(row["frames"]))


class SegmentBatch:
    """The Ray Data callable class: one ``Pipeline`` per actor, opened in ``__init__``, then batches
    of rows (input, root, output, format, kind) in, one status row per file out."""

    def __init__(self, pipeline_options: dict[str, Any], config: OutputConfig, threads: int = 1,
                 log_level: int = logging.WARNING) -> None:
        import cv2

        from .native_logs import hide_native_logs

        hide_native_logs()  # an actor's process runs this class only
        logging.getLogger("bgremove").setLevel(log_level)
        cv2.setNumThreads(threads)
        options = dict(pipeline_options)
        segmenter = options.get("segmenter") or SegmenterConfig()
        if segmenter.threads is None:
            options["segmenter"] = dataclasses.replace(segmenter, threads=threads)
        self._config = config
        self._pipeline: Pipeline | None = Pipeline(**options).open()
        # The actor's process may end without collecting this object; an open ImageSegmenter left
        # to the interpreter's teardown deadlocks it.
        atexit.register(self.close)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from .batch import attempt

        columns: dict[str, list[Any]] = {name: [] for name in ("input", "output", "status", "error", "seconds",
                                                                "frames")}
        for index in range(len(batch["input"])):
            result = attempt(self._pipeline, _job(batch, index), self._config)
            columns["input"].append(str(result.input))
            columns["output"].append(str(result.output) if result.output else "")
            columns["status"].append(result.status)
            columns["error"].append(result.error or "")
            columns["seconds"].append(result.seconds)
            columns["frames"].append(result.frames)
        return columns

    def close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close()

    def __del__(self) -> None:
        self.close()


def _job(batch: dict[str, Any], index: int) -> Job:
    path = Path(str(batch["input"][index]))
    root = str(batch["root"][index])
    job = Job(InputFile(path, Path(root) if root else None), output=Path(str(batch["output"][index])),
              format=str(batch["format"][index]), kind=str(batch["kind"][index]))
    if job.kind == "video":
        from .video import probe_video

        try:
            job.video = probe_video(path)
        except BgRemoveError as error:
            job.error = error
    return job
