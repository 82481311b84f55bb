"""Memory allocation settings for bgremove's own processes (the CLI and its workers), never on import.

A 12 MP photo passes through many arrays of 36-48 MB (the decoded picture, the full-size matte, the
RGBA output, the filtered PNG rows). glibc's malloc hands out every block above 32 MB (its largest
mmap threshold) as fresh pages from the kernel and gives them back on free, so each such array is
page-faulted and zeroed anew: 22% of the CPU time of a photo batch went to the kernel zeroing pages.
With one arena, no mmap'ed blocks and no trimming, freed blocks are reused by whichever thread asks
next: photo batches took 11-14% less wall time and 12-16% less CPU and peaked 60-80 MB lower; videos
did not change (README, Benchmarks).
"""

from __future__ import annotations

import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# Set by the user: their choice stands.
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                  "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """On glibc (Linux), make malloc keep and reuse freed blocks for the rest of this process; call it
    before the process starts threads. Returns whether it did (False elsewhere, or where the user set
    malloc's own settings in the environment)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
    return all(mallopt(option, value) == 1 for option, value in settings)
