"""Run the ends of a video's pipeline in threads: decode ahead of segmentation, encode behind it.

Decoding (PyAV), segmentation (MediaPipe), compositing (OpenCV) and encoding (PyAV) spend their time in
native code that releases the GIL, so a thread on each side lets the three overlap on a multi-core
machine. Queues are bounded (two frames each), so memory stays flat however long the video is.

Errors keep their meaning: an exception raised by the source or the consumer in its thread comes out in
the caller's thread as the same exception object (the CLI reports it as the same one-line error). When
the caller stops early (an error, Ctrl-C, SIGTERM), ``close``/``abort`` stop the threads promptly and
wait for them, so that nothing touches a decoder or encoder after the caller closes it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

# How often a blocked thread looks whether it should stop, in seconds.
_POLL = 0.05


def lower_priority(steps: int) -> None:
    """Make the calling thread ``steps`` nicer than it is (Linux, where the nice value is per thread;
    elsewhere, and where the system refuses, nothing happens).

    A video's encoder is the stage the others wait for. Decoding and segmentation run ahead of it and
    only fill queues, so when the cores are contended they should yield to the encoder's threads, not
    take turns with them. Threads the calling one starts later inherit its nice value.
    """
    if steps <= 0 or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + steps))


class Prefetch(Generic[Item]):
    """Iterates ``source`` in a thread, at most ``depth`` items ahead of the consumer (two is enough to
    keep both sides busy; each item more is a frame more in memory).

    An exception from ``source`` is raised by ``__next__`` where its item would have come. ``close``
    (also at the end of a ``with`` block) stops the thread and closes ``source`` if it is a generator.
    ``nice`` lowers the thread's priority by that much (``lower_priority``).
    """

    def __init__(self, source: Iterable[Item], depth: int = 2, name: str = "bgremove-prefetch",
                 nice: int = 0) -> None:
        self._source = iter(source)
        self._nice = nice
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lower_priority(self._nice)
        try:
            for item in self._source:
                if not self._offer(("item", item)):
                    return
            self._offer(("end", None))
        except BaseException as error:  # handed to the consumer, raised there
            self._offer(("error", error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _offer(self, message: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._done:
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise StopIteration from None
        if kind == "item":
            return value  # type: ignore[no-any-return]
        self._done = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._done = True
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:  # make room, in case the thread waits to put
                    self._queue.get_nowait()
            self._thread.join(_POLL)

    def __enter__(self) -> Prefetch[Item]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


class Drain(Generic[Item]):
    """Calls ``consume(item)`` in a thread for each item ``put``, in order, at most ``depth`` behind.

    An exception from ``consume`` stops the thread and is raised by the next ``put`` or by ``finish``.
    In a ``with`` block, a normal end waits for every item (``finish``); an exception drops what is
    still queued (``abort``). ``start``, if given, runs first in the thread (its exception likewise).
    """

    def __init__(self, consume: Callable[[Item], object], depth: int = 2, name: str = "bgremove-drain",
                 start: Callable[[], object] | None = None) -> None:
        self._consume = consume
        self._start = start
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._start is not None:
            try:
                self._start()
            except BaseException as error:  # raised in the caller's thread
                self._error = error
                return
        while True:
            item = self._queue.get()
            if item is _END or self._stop.is_set():
                return
            try:
                self._consume(item)
            except BaseException as error:  # raised in the caller's thread
                self._error = error
                return

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._thread.is_alive():
            raise RuntimeError("the consumer thread has stopped")

    def put(self, item: Item) -> None:
        while True:
            self._check()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item put has been consumed; raise what the consumer raised, if anything."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # it stopped on an error: raised just below
                self.put(_END)  # type: ignore[arg-type]
            while self._thread.is_alive():
                self._thread.join(_POLL)
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after the item being consumed now; drop the rest."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_END)
            self._thread.join(_POLL)

    def __enter__(self) -> Drain[Item]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()
