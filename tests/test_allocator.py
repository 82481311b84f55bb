"""The CLI's malloc settings: big freed blocks are reused instead of page-faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SCRIPT = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count faults in 4 KB pages
import numpy as np
from bgremove.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = np.empty(48 * 2**20, np.uint8)  # a 12 MP float32 matte
    block[::4096] = 1  # touch every page
    del block
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    result = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True,
                            env=environment, timeout=60)
    applied, faults = result.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_big_blocks_are_reused_without_new_page_faults() -> None:
    applied, tuned = _faults("tuned")
    if not applied:
        pytest.skip("this Linux has no glibc mallopt (musl?)")
    _, plain = _faults("plain")
    assert plain > 20 * 10_000  # every 48 MB block page-faulted anew (12,288 pages each)
    assert tuned < plain / 5


def test_the_users_own_malloc_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from bgremove.allocator import keep_freed_memory

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert keep_freed_memory() is False
