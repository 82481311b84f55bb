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


class Focus(enum.Enum):
    """Where a model's second, zoomed pass looks."""

    SUBJECT = "subject"  # around what the model itself found in the whole frame
    HEAD = "head"  # around the head of the person a person model finds (hair models)


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
    ``segment_every``: videos only: the model runs on every Nth frame at least, and on the frames
    between only where the subject moves (see ``temporal``); 1 runs it on every frame. Smoothing off
    runs it on every frame; with ``smooth`` below N - 1 it runs on every ``smooth + 1``-th at least.
    """

    keep: tuple[str, ...] | None = None
    threshold: float | None = None
    feather: float = 0.0
    smooth: int = 3
    segment_every: int = 2

    @property
    def needs_float_matte(self) -> bool:
        """Whether the frame-size matte must stay float32: a threshold or a feather works on it there;
        without either an 8-bit matte (0-255) holds all that an output shows."""
        return self.threshold is not None or self.feather > 0


@dataclass(frozen=True)
class RefineConfig:
    """Steps between the model and the matte that make it more accurate; each one is measured by
    ``bench/eval.py`` (README.md, Quality, has the numbers that chose these defaults).

    ``zoom``: run the model again on a crop around the subject found in the whole frame (for a model
    whose spec says ``Focus.HEAD``, such as hair, around the head of the person a person model finds),
    so that a small subject fills the model's input. ``margin`` widens the crop by this fraction of the
    subject's size on each side; ``crop_aspects`` lists the crops that are run and averaged: 0 is the
    subject's box stretched to the model, 0.75 the box widened until its short side is at least 3/4 of
    the long one (real pixels around the subject, not padding).
    ``flip``: average each pass with a pass on the mirrored picture.
    ``tiles``: for a tall crop (a standing person), also run its upper and lower 60 percent, so that
    each part is seen at a higher resolution.
    ``edges``: move the matte's outline onto the photo's colour edges at full resolution, where one
    model pixel covers at least ``edges_min_scale`` photo pixels (below that the model's outline is
    already as sharp as the photo's).
    """

    zoom: bool = True
    flip: bool = True
    tiles: bool = False
    edges: bool = True
    margin: float = 0.15
    crop_aspects: tuple[float, ...] = (0.0, 0.75)
    edges_min_scale: float = 2.0

    @classmethod
    def off(cls) -> RefineConfig:
        """One pass of the model over the whole frame, as it is: what ``--fast`` does."""
        return cls(zoom=False, flip=False, tiles=False, edges=False)

    @classmethod
    def best(cls) -> RefineConfig:
        """Every step, at about 1.5x the default's time: what ``--quality`` does."""
        return cls(tiles=True)


@dataclass(frozen=True)
class CompositeConfig:
    """What replaces the background."""

    mode: CompositeMode = CompositeMode.TRANSPARENT
    background: Path | None = None
    fit: BgFit = BgFit.COVER
    color: tuple[int, int, int] = (0, 0, 0)
    blur: int = 45
    decontaminate: bool = True  # estimate the subject's own colours at its edges (no halo of the old background)


# bgremove's default encoding speed: x264's superfast with its macroblock-tree rate control kept on
# (see ``video._x264_options``), between superfast and veryfast.
DEFAULT_PRESET = "superfast+mbtree"
# x264's speed presets and the default, fastest first; VP9 maps them onto its own speed settings.
PRESETS = ("ultrafast", "superfast", DEFAULT_PRESET, "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow")


@dataclass(frozen=True)
class VideoConfig:
    """How videos are cut and encoded.

    ``crf``/``preset``: x264's quality (0-51, lower is better) and speed; VP9 maps both onto its own
    scales, ProRes ignores them. ``audio``: keep the audio streams. ``start``/``end``: the part to do,
    in seconds from the start (``end`` None: to the end).
    """

    crf: int = 20
    preset: str = DEFAULT_PRESET
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
