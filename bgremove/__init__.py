"""bgremove: remove or replace the background of photos and videos.

Heavy modules (mediapipe, onnxruntime, PyAV, OpenCV) load only when a pipeline runs, so importing this
package is cheap. The public names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Pipeline", "process_file", "remove_background", "__version__"]

if TYPE_CHECKING:
    from .pipeline import Pipeline, process_file, remove_background


def __getattr__(name: str) -> Any:
    if name in ("Pipeline", "process_file", "remove_background"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'bgremove' has no attribute {name!r}")
