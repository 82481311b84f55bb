"""What the user asked for, as frozen dataclasses: the CLI builds these, the library reads them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class CompositeMode(enum.Enum):
    TRANSPARENT = "transparent"
    COLOR = "bg-color"
    IMAGE = "bg"
    BLUR = "blur"
    DESATURATE = "desaturate"
    MASK = "mask-only"

    @property
    def opaque(self) -> bool:
        """Whether the output has no alpha channel (it keeps the input's image format)."""
        return self not in (CompositeMode.TRANSPARENT, CompositeMode.MASK)


class BgFit(enum.Enum):
    COVER = "cover"  # fill the frame, crop what sticks out
    CONTAIN = "contain"  # whole background visible, bars where the aspect differs
    STRETCH = "stretch"  # scale both axes to the frame


@dataclass(frozen=True)
class SegmenterConfig:
    """Which model to run: a registry name (``selfie``) or a path to a model file."""

    model: str = "selfie"
    device: str = "auto"
    labels_file: Path | None = None
    threads: int | None = None


@dataclass(frozen=True)
class MaskConfig:
    """How per-class confidences become one alpha matte.

    ``keep``: labels that count as foreground (None: the model's default).
    ``threshold``: None for a soft matte, else a hard 0/1 cut at this confidence.
    ``feather``: blur radius in pixels applied to the matte at frame resolution.
    ``smooth``: videos only: frames looked at on each side (past and future) when smoothing the matte
    over time; 0 turns it off.
    """

    keep: tuple[str, ...] | None = None
    threshold: float | None = None
    feather: float = 0.0
    smooth: int = 2


@dataclass(frozen=True)
class CompositeConfig:
    """What replaces the background."""

    mode: CompositeMode = CompositeMode.TRANSPARENT
    background: Path | None = None
    fit: BgFit = BgFit.COVER
    color: tuple[int, int, int] = (0, 0, 0)
    blur: int = 45


# x264's speed presets, fastest first; VP9 maps them onto its own speed settings.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class VideoConfig:
    """How videos are cut and encoded.

    ``crf``/``preset``: x264's quality (0-51, lower is better) and speed; VP9 maps both onto its own
    scales, ProRes ignores them. ``audio``: keep the audio streams. ``start``/``end``: the part to do,
    in seconds from the start (``end`` None: to the end).
    """

    crf: int = 20
    preset: str = "veryfast"
    audio: bool = True
    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class OutputConfig:
    """Where and how outputs are written."""

    suffix: str = "_nobg"
    output_dir: Path | None = None
    format: str | None = None  # images: "png", "jpg" or "webp"
    overwrite: bool = False
    jpeg_quality: int = 95
    video_format: str | None = None  # videos: "mp4", "webm" or "mov"
    video: VideoConfig = field(default_factory=VideoConfig)
