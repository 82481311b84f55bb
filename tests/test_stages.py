"""Prefetch and Drain: order, errors raised in the caller's thread, prompt stops, bounded queues."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bgremove.stages import Drain, Prefetch


def _threads(prefix: str = "bgremove-") -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_prefetch_keeps_order_and_count() -> None:
    with Prefetch(range(1000), depth=3) as items:
        assert list(items) == list(range(1000))
    assert not _threads()


def test_prefetch_raises_the_source_error_where_it_happened() -> None:
    failure = ValueError("frame 5 is corrupt")

    def source():
        yield from range(5)
        raise failure

    seen = []
    with pytest.raises(ValueError) as raised, Prefetch(source()) as items:
        for item in items:
            seen.append(item)
    assert raised.value is failure and seen == [0, 1, 2, 3, 4]
    assert not _threads()


def test_prefetch_runs_at_most_depth_ahead_and_stops_promptly() -> None:
    produced = []
    closed = threading.Event()

    def source():
        try:
            for index in range(10_000):
                produced.append(index)
                yield index
        finally:
            closed.set()

    items = Prefetch(source(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)
    assert len(produced) <= 1 + 2 + 1  # the one taken, the queue, the one waiting to be put
    started = time.perf_counter()
    items.close()
    assert time.perf_counter() - started < 1.0
    assert closed.is_set() and not _threads()


def test_drain_consumes_everything_in_order() -> None:
    consumed = []
    with Drain(consumed.append, depth=2) as sink:
        for index in range(500):
            sink.put(index)
    assert consumed == list(range(500))
    assert not _threads()


def test_drain_start_runs_first_in_its_thread_and_its_error_comes_out_of_put() -> None:
    events: list[tuple[str, str]] = []
    with Drain(lambda item: events.append(("item", threading.current_thread().name)), name="bgremove-sink",
               start=lambda: events.append(("start", threading.current_thread().name))) as sink:
        sink.put(1)
    assert events == [("start", "bgremove-sink"), ("item", "bgremove-sink")]

    failure = OSError("no encoder")

    def start() -> None:
        raise failure

    consumed: list[int] = []
    sink = Drain(consumed.append, start=start)
    with pytest.raises(OSError) as raised:
        for index in range(100):
            sink.put(index)
            time.sleep(0.001)
    sink.abort()
    assert raised.value is failure and consumed == [] and not _threads()


def test_drain_error_comes_out_of_put_without_a_deadlock() -> None:
    failure = OSError("disk full")

    def consume(item: int) -> None:
        if item == 3:
            raise failure

    sink = Drain(consume, depth=1)
    started = time.perf_counter()
    with pytest.raises(OSError) as raised:
        for index in range(100):
            sink.put(index)
    sink.abort()
    assert raised.value is failure and time.perf_counter() - started < 2.0
    assert not _threads()


def test_drain_error_at_the_end_comes_out_of_finish() -> None:
    failure = RuntimeError("cannot flush")

    def consume(item: int) -> None:
        if item == 9:
            raise failure

    with pytest.raises(RuntimeError) as raised, Drain(consume) as sink:
        for index in range(10):
            sink.put(index)
    assert raised.value is failure


def test_drain_abort_drops_the_queue_and_returns_promptly() -> None:
    consumed = []

    def slow(item: int) -> None:
        time.sleep(0.05)
        consumed.append(item)

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), Drain(slow, depth=3) as sink:
        for index in range(4):
            sink.put(index)
        raise KeyboardInterrupt
    assert time.perf_counter() - started < 1.0
    assert len(consumed) <= 2 and not _threads()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the nice value is per thread on Linux only")
def test_prefetch_runs_its_source_nicer_and_leaves_the_caller_as_it_was() -> None:
    """A video's decoding and segmentation threads yield the cores to the encoder (pipeline._AHEAD_NICE)."""

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def source():
        yield nice_here()

    before = nice_here()
    with Prefetch(source(), nice=3) as ahead:
        seen = list(ahead)
    with Prefetch(source()) as plain:
        unchanged = list(plain)
    assert seen == [min(19, before + 3)]
    assert unchanged == [before]
    assert nice_here() == before
