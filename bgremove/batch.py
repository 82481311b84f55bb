"""Running many jobs: one after another in this process, or in a pool of worker processes.

Both give one ``FileResult`` per job, and a failure of one input never stops the others. The pool:

- **spawn**, not fork: MediaPipe and TFLite start threads and are not fork-safe once used, and a fresh
  interpreter behaves the same on Linux, macOS and Windows.
- **One model per worker**: the initializer builds a ``Pipeline`` and opens it once; it is closed when
  the worker ends (an ``ImageSegmenter`` left to the garbage collector deadlocks the exit).
- **Threads**: each worker gets about ``cores // workers`` threads for ONNX Runtime and OpenCV, so
  ``-j N`` does not run N times all cores' worth of threads.
- **One file per task**: a video is one task, so its frames stay in order in one worker.
- **Stopping**: Ctrl-C in a terminal reaches the whole process group; workers ignore SIGINT and the
  parent decides. On an interrupt the parent cancels what has not started and sends SIGTERM to the
  workers, which abandon their file (its temporary is removed) and exit. A worker whose parent dies
  (SIGKILL) does the same by itself.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from .config import OutputConfig, SegmenterConfig
from .errors import BgRemoveError, OutputExists
from .media import remove_stale_temporaries
from .pipeline import (
    FileResult,
    Job,
    Pipeline,
    ProgressFactory,
    opencv_threads,
    process_file,
    read_job_image,
    write_job_image,
)
from .stages import Prefetch
from .types import Alpha, Frame, Matte8

logger = logging.getLogger(__name__)

# How long stopped workers get to remove their temporaries and close their model before being killed.
STOP_GRACE_SECONDS = 10.0


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the whole machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def needs_work(job: Job, config: OutputConfig) -> bool:
    """Whether the job would write something (not failed at planning, not an existing output to skip)."""
    return job.error is None and job.output is not None and (config.overwrite or not job.output.exists())


def attempt(pipeline: Pipeline | None, job: Job, config: OutputConfig,
            progress: ProgressFactory | None = None) -> FileResult:
    """Process one job and say what happened; never raises for a problem of this one input.

    ``pipeline`` may be None for a job that ``needs_work`` says will not be processed.
    """

    def work() -> FileResult:
        if pipeline is None and needs_work(job, config):
            raise BgRemoveError(f"{job.input.path}: no pipeline to process it")
        return process_file(pipeline, job, config, progress)  # type: ignore[arg-type]

    return settle(job, work)


Done = TypeVar("Done")


def settle(job: Job, work: Callable[[], Done], started: float | None = None) -> Done | FileResult:
    """``work()``'s result, or the failed or skipped result its error means for ``job``; ``seconds``
    counts from ``started`` (default: now)."""
    started = time.perf_counter() if started is None else started
    try:
        return work()
    except OutputExists as error:
        result = FileResult(job.input.path, job.output, "skipped", one_line(error))
    except BgRemoveError as error:
        result = FileResult(job.input.path, None, "failed", one_line(error))
    except Exception as error:  # a bug or an unforeseen input: report it, go on with the rest
        logger.debug("while processing %s", job.input.path, exc_info=True)
        message = f"{job.input.path}: unexpected {type(error).__name__}: {one_line(error)}"
        result = FileResult(job.input.path, None, "failed", message)
    result.seconds = time.perf_counter() - started
    return result


@contextlib.contextmanager
def interrupts_survive_finalizers() -> Iterator[None]:
    """Deliver again a Ctrl-C that Python swallowed.

    Python raises a signal's exception wherever the main thread is; when that is inside a ``__del__``
    (or another finalizer), the exception is printed as "Exception ignored in ..." and dropped, and the
    run would go on as if Ctrl-C or SIGTERM had never come. Here such a KeyboardInterrupt is raised again
    just after the finalizer, where it stops the run.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _interrupt_main_soon(signal.SIGINT)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _interrupt_main_soon(signum: int) -> None:
    """Have the main thread's handler for ``signum`` run again, once the finalizer that swallowed it is
    over (from the main thread itself, it would run at once, inside that same finalizer)."""
    timer = threading.Timer(0.01, _thread.interrupt_main, args=(signum,))
    timer.daemon = True
    timer.start()


def settle_done(jobs: Iterable[Job], config: OutputConfig, todo: list[Job]) -> Iterator[FileResult]:
    """The results of the jobs that need no work (skipped, failed at planning), in order; the others
    are appended to ``todo`` for an engine to run."""
    for job in jobs:
        if needs_work(job, config):
            todo.append(job)
        else:
            yield attempt(None, job, config)


def run_in_process(pipeline: Pipeline, jobs: Iterable[Job], config: OutputConfig,
                   progress: ProgressFactory | None = None) -> Iterator[FileResult]:
    """The jobs one after another, results in order. The model is loaded before the first job that needs
    it, outside ``attempt``, so a bad model or label is the run's error, not each file's.

    Images overlap in four threads: the next image is read (decoded) in one while this one is
    segmented here, and the ones before are composited (the colour step, the blend), encoded and
    written in two more, at most two at once. Decoding, compositing and encoding (Pillow, OpenCV,
    NumPy, zlib) release the GIL, so on two cores a batch of photos keeps both busy: segmenting a 12 MP
    photo is a third of its work, compositing and PNG encoding the rest. At most five images are held:
    one read ahead, one being read, this one, two being composited and written. While images overlap,
    OpenCV's own pool gets only the cores these threads leave (``_batch_opencv_threads``). A video
    waits for the images before it, then runs its own threads.
    """
    jobs = list(jobs)
    with contextlib.ExitStack() as stack:
        images = (job for job in jobs if job.kind != "video" and needs_work(job, config))
        if next(images, None) is not None and next(images, None) is not None:  # (two are enough to overlap)
            stack.enter_context(opencv_threads(_batch_opencv_threads()))
        reads = stack.enter_context(Prefetch(_read_ahead(jobs, config), depth=1, name="bgremove-read"))
        writer = ThreadPoolExecutor(_FINISHING_THREADS, thread_name_prefix="bgremove-write")
        # an interrupt drops the writes not begun; the one under way ends (an output is whole or absent)
        stack.callback(writer.shutdown, wait=True, cancel_futures=True)
        pending: collections.deque[FileResult | Future[FileResult]] = collections.deque()
        for job, started, read in reads:
            if read is None:  # a video, or a job with nothing to do
                while pending:
                    yield _result(pending.popleft())
                if needs_work(job, config):
                    pipeline.open(video=job.kind == "video")
                yield attempt(pipeline, job, config, progress)
                continue
            pipeline.open()
            outcome = settle(job, functools.partial(_segment, pipeline, read), started)
            if isinstance(outcome, FileResult):
                pending.append(outcome)
            else:
                pending.append(writer.submit(settle, job, functools.partial(
                    _finish, pipeline, job, config, *outcome, started), started))
            # waiting for the one before keeps two at most in the finishing threads
            while len(pending) > 1:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


_Read = tuple[Frame | None, BaseException | None]


def _read_ahead(jobs: Iterable[Job], config: OutputConfig) -> Iterator[tuple[Job, float, _Read | None]]:
    """Each job with the time its work began and, for an image to process, its pixels or the error
    reading them raised (None for the others: ``attempt`` deals with them)."""
    for job in jobs:
        started = time.perf_counter()
        if job.kind == "video" or not needs_work(job, config):
            yield job, started, None
            continue
        try:
            read: _Read = (read_job_image(job, config), None)
        except Exception as error:  # settled in order, in the caller's thread
            read = (None, error)
        yield job, started, read


# Threads that composite, encode and write images while the next one is segmented.
_FINISHING_THREADS = 2


def _batch_opencv_threads() -> int:
    """OpenCV's pool size while a batch overlaps its images: the cores that the batch's own threads
    (segmenting, finishing) leave, at least one (no pool).

    On two cores those threads keep both busy, and OpenCV splitting a resize or a blur over a pool of
    its own only adds its hand-offs: 40 photos to ``--bg`` JPEG with the pool at one thread, in six
    sets of 5-8 interleaved runs over three days, took 0.95-1.02 of the time (within this VM's noise)
    and 0.94-0.98 of the CPU in each of the five sets whose CPU was recorded; to PNG 1.00 of the time
    and the same CPU. One photo keeps the whole pool: it has nothing to overlap with."""
    return max(1, available_cores() - 1 - _FINISHING_THREADS)


def _segment(pipeline: Pipeline, read: _Read) -> tuple[Frame, Alpha | Matte8]:
    frame, error = read
    if error is not None:
        raise error
    assert frame is not None
    return frame, pipeline.matte(frame)


def _finish(pipeline: Pipeline, job: Job, config: OutputConfig, frame: Frame, alpha: Alpha | Matte8,
            started: float) -> FileResult:
    return write_job_image(job, config, pipeline.composite(frame, alpha), started)


def _result(item: FileResult | Future[FileResult]) -> FileResult:
    return item.result() if isinstance(item, Future) else item


def run_in_pool(jobs: Sequence[Job], pipeline_options: dict[str, Any], config: OutputConfig, workers: int,
                *, log_level: int = logging.WARNING) -> Iterator[FileResult]:
    """The jobs in ``workers`` processes, results in the order they finish.

    Jobs with nothing to do (planning errors, outputs to skip) are settled here first, without a worker.
    A problem with the model or options (found by a worker as it starts) is raised as the
    ``BgRemoveError`` it is, after the pool is stopped. Closing the generator early (an interrupt)
    stops the workers and removes their temporaries.
    """
    todo: list[Job] = []
    yield from settle_done(jobs, config, todo)
    if not todo:
        return
    workers = max(1, min(workers, len(todo)))
    threads = max(1, available_cores() // workers)
    blocking = hasattr(signal, "pthread_sigmask")
    # Workers are started inside submit(); with SIGINT and SIGTERM blocked meanwhile they inherit the
    # block, so a Ctrl-C cannot hit a worker before its initializer has set it to ignore SIGINT.
    # A signal that comes in the meantime is delivered here when the block is lifted.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if blocking else None
    try:
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(pipeline_options, config, threads, log_level),
        )
        futures: dict[Future[FileResult], Job] = {executor.submit(_work, job): job for job in todo}
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    finished = False
    try:
        for future in as_completed(futures):
            yield _outcome(future, futures[future])
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            _stop(executor, [job.output for job in todo if job.output is not None])


def _outcome(future: Future[FileResult], job: Job) -> FileResult:
    try:
        return future.result()
    except BrokenProcessPool:
        return FileResult(job.input.path, None, "failed",
                          f"{job.input.path}: not processed: a worker process died (killed or out of memory?); "
                          "run again to resume")
    # A BgRemoveError here is the model or options failing in every worker: the run's error.


def _stop(executor: ProcessPoolExecutor, outputs: list[Path]) -> None:
    """Cancel what has not started, stop the workers (SIGTERM, then SIGKILL after a grace time) and
    remove what a killed one left behind."""
    # The executor has no public way to reach its processes; terminate() is the only way to stop a
    # file half-way, and waiting for every running file to finish could take minutes for a video.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    try:
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(process.is_alive() for process in processes):
            # Again and again: a worker whose signal landed in a finalizer (__del__) never saw it.
            for process in processes:
                if process.is_alive():
                    process.terminate()
            multiprocessing.connection.wait([process.sentinel for process in processes if process.is_alive()],
                                            timeout=RESIGNAL_SECONDS)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(1.0)
        remove_stale_temporaries(outputs)


# ---------------------------------------------------------------------------------------------------
# Inside a worker process

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
EXIT_STOPPED = 128 + signal.SIGTERM
# A SIGTERM that Python delivers while a __del__ runs raises there and is swallowed ("Exception
# ignored in ..."), so whoever stops a worker repeats the signal at this interval until it is gone.
RESIGNAL_SECONDS = 0.5


class _Worker:
    pipeline: Pipeline | None = None
    config: OutputConfig = OutputConfig()
    setup_error: BgRemoveError | None = None
    job: Job | None = None  # the job in progress
    stopping: bool = False


def _start_worker(pipeline_options: dict[str, Any], config: OutputConfig, threads: int, log_level: int) -> None:
    """The pool's initializer: signals, logging, threads, and the one ``Pipeline`` of this worker."""
    from .allocator import keep_freed_memory

    keep_freed_memory()  # as in the CLI's own process, before this worker starts threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    sys.unraisablehook = _unraisable
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _watch_parent()
    # Native libraries may print to stdout, which belongs to the parent's --json lines.
    os.dup2(2, 1)
    package_logger = logging.getLogger("bgremove")
    package_logger.setLevel(log_level)
    if not package_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("bgremove: %(levelname)s: %(message)s"))
        package_logger.addHandler(handler)
    _Worker.config = config
    try:
        import cv2

        from .native_logs import hide_native_logs

        hide_native_logs()  # a worker is bgremove's own process, as the command's

        cv2.setNumThreads(threads)
        options = dict(pipeline_options)
        segmenter: SegmenterConfig = options.get("segmenter") or SegmenterConfig()
        if segmenter.threads is None:
            options["segmenter"] = dataclasses.replace(segmenter, threads=threads)
        _Worker.pipeline = Pipeline(**options)
        _Worker.pipeline.open()
    except BgRemoveError as error:
        _Worker.setup_error = error
    except Exception as error:
        logger.debug("worker setup failed", exc_info=True)
        _Worker.setup_error = BgRemoveError(f"cannot start a worker process: {type(error).__name__}: "
                                            f"{one_line(error)}")
    # Run at the worker's normal exit, before the interpreter tears down the segmenter by itself.
    multiprocessing.util.Finalize(None, _close_pipeline, exitpriority=100)


def _work(job: Job) -> FileResult:
    if _Worker.setup_error is not None:
        raise _Worker.setup_error
    if _Worker.stopping:
        _exit_now()
    _Worker.job = job
    try:
        result = attempt(_Worker.pipeline, job, _Worker.config)
    except SystemExit:  # SIGTERM: the file is abandoned (its temporary removed on the way); end the worker
        _exit_now()
    finally:
        _Worker.job = None
    if _Worker.stopping:  # the signal came but was swallowed: the file got done; stop now
        _exit_now()
    return result


def _on_terminate(signum: int, frame: object) -> None:
    _Worker.stopping = True
    if _Worker.job is None:  # starting or idle: nothing is being written, so end right here
        _exit_now()
    raise SystemExit(EXIT_STOPPED)  # unwinds the file being written, removing its temporary, up to _work


def _unraisable(unraisable: Any) -> None:
    """Our stop signal, swallowed by a finalizer: deliver it again, with no traceback for it."""
    if _Worker.stopping and isinstance(unraisable.exc_value, SystemExit):
        _interrupt_main_soon(signal.SIGTERM)
    else:
        sys.__unraisablehook__(unraisable)


def _exit_now() -> None:
    """End the worker: its own temporaries (a signal that landed just as one was created, or inside
    the unwinding) removed, the model closed, no exception for the pool's loop to catch."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    job = _Worker.job
    if job is not None and job.output is not None:
        remove_stale_temporaries([job.output], mine=True)
    _close_pipeline()
    logging.shutdown()
    os._exit(EXIT_STOPPED)


def _close_pipeline() -> None:
    pipeline, _Worker.pipeline = _Worker.pipeline, None
    if pipeline is not None:
        pipeline.close()


def _watch_parent() -> None:
    """Stop this worker when its parent dies (SIGKILL leaves no time to tell it), so no orphan keeps
    a model in memory or a half-written file on disk."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        while True:
            # To the main thread: a signal sent to the process may be taken by this thread, and then a
            # main thread blocked reading the (now writerless) task queue would never run the handler.
            if hasattr(signal, "pthread_kill"):
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
            else:
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(RESIGNAL_SECONDS)

    threading.Thread(target=watch, name="bgremove-parent-watch", daemon=True).start()
