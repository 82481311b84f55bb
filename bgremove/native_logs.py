"""MediaPipe's native log lines, hidden in the processes that bgremove runs as a whole.

A module of its own, without NumPy, so that the command can turn the hiding on before anything loads.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

# Whether ``quiet_native_stderr`` hides anything: only in processes that bgremove runs as a whole (the
# command, its ``-j`` workers, its Ray actors), which call ``hide_native_logs``; a program that uses the
# library keeps its descriptor 2 as it is.
_hide_native_logs = False


def hide_native_logs(hide: bool = True) -> None:
    """Let ``quiet_native_stderr`` hide MediaPipe's native log lines in this process (see there)."""
    global _hide_native_logs
    _hide_native_logs = hide


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hide what TFLite and MediaPipe's C++ code writes straight to file descriptor 2, where
    ``hide_native_logs`` asked for it.

    Their INFO/W0000 lines ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires")
    ignore Python's logging and the GLOG/TF environment variables, so the descriptor is pointed at
    /dev/null for the duration. That is the whole process's descriptor 2: what any other thread
    writes there meanwhile is lost too, so a program that uses the library sees MediaPipe's lines
    instead (``hide_native_logs`` is off unless called). Shown when the ``bgremove`` logger is at
    DEBUG (the CLI's ``-v``).
    """
    if not _hide_native_logs or logging.getLogger("bgremove").isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
