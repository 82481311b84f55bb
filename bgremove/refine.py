"""Foreground probability at frame size, made better than one pass of the model over the whole frame.

The model sees any frame squeezed to its small input (256x256 for selfie), so a person who fills a
tenth of a photo is a few dozen model pixels tall and every outline is as coarse as one model pixel.
The steps here, each measured by ``bench/eval.py`` (numbers in README.md, Quality):

- zoom: a second pass on a crop around what the first pass found, so the subject fills the input;
- flip: every pass averaged with a pass on the mirrored picture (the model is not mirror-symmetric,
  and its two answers err differently);
- head crop: for a hair model, the crop is around the head of the person a person model finds;
- edges: where one model pixel covers several photo pixels, the outline is moved onto the photo's own
  colour edges (a local two-colour model fused with the model's probability).

They work on any segmenter through a ``Probe`` (pixels in, probability at model resolution out), so
they live here and not inside a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from .config import Focus, RefineConfig
from .mask import PointSampler, alpha_to_uint8, nonzero_positions, per_channel, resize_alpha, shrink_image
from .types import Alpha, Matte8, RGBImage

# A crop smaller than this (pixels on its short side) holds too little for any model: no zoom then.
MIN_CROP = 8
# The edge step works on a picture of at most this long side (a 33 MP photo: 1.9 s at full size).
EDGES_LONG_SIDE = 2048
# A larger photo is refined whole (passes, merge and edge step) on a copy of this long side, and only the
# result is enlarged: the merge at 12 MP cost 0.5 s of NumPy, for detail that the model (256 px) and the
# edge step (2048 px) do not have. ``bench/eval.py --scale 4`` measures both ways alike.
WORK_LONG_SIDE = 2048

Probe = Callable[[RGBImage], Alpha]
"""Runs a model on H x W x 3 uint8 pixels of any size and returns the foreground probability at the
model's resolution (h x w float32 in [0, 1])."""


class Box(NamedTuple):
    """A rectangle of frame pixels: ``rgb[top:bottom, left:right]``."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def within(self, outer: Box) -> Box:
        """This rectangle in the coordinates of ``outer``'s pixels (``outer`` holds it)."""
        return Box(self.left - outer.left, self.top - outer.top, self.right - outer.left, self.bottom - outer.top)


# Model-resolution probability to ``width`` x ``height`` (bilinear; area when shrinking): the mask's own resize.
upsample = resize_alpha


def _mirror(rgb: RGBImage) -> RGBImage:
    """``rgb`` mirrored left to right, as a new contiguous picture: ``cv2.flip`` gives the same bytes
    as NumPy copying the reversed view, 1.3 against 22 ms for a 2048 x 1536 working copy."""
    return np.asarray(cv2.flip(np.ascontiguousarray(rgb), 1), dtype=np.uint8)


def model_pass(probe: Probe, rgb: RGBImage, *, flip: bool, known: Alpha | None = None) -> tuple[Alpha, float]:
    """The probability for ``rgb`` at its own size, and how many of its pixels one model pixel covers.

    With ``flip`` it is the mean of the pass on ``rgb`` and the mirrored pass on the mirrored pixels.
    ``known`` is the unflipped pass when it was already made (at model resolution).
    """
    height, width = rgb.shape[:2]
    probability = probe(rgb) if known is None else known
    scale = max(width / probability.shape[1], height / probability.shape[0])
    if flip:
        mirrored = probe(_mirror(rgb))[:, ::-1]
        if mirrored.shape == probability.shape:
            probability = (probability + mirrored) * np.float32(0.5)
        else:  # a model with a dynamic input size may read the mirror at another size
            mirrored = upsample(np.ascontiguousarray(mirrored), width, height)
            probability = (upsample(probability, width, height) + mirrored) * np.float32(0.5)
    return upsample(np.ascontiguousarray(probability, dtype=np.float32), width, height), scale


def _fit(start: float, end: float, limit: int) -> tuple[int, int]:
    """Slide the span [start, end) inside [0, limit) keeping its length when it fits, and round it."""
    if start < 0:
        end, start = end - start, 0.0
    if end > limit:
        start, end = start - (end - limit), float(limit)
    return max(0, int(np.floor(start))), min(limit, int(np.ceil(end)))


def widen(box: Box, width: int, height: int, min_aspect: float) -> Box:
    """Grow the short side of ``box`` until it is at least ``min_aspect`` times the long one, taking real
    pixels around it (sliding inward at the frame's borders)."""
    if min_aspect <= 0:
        return box
    left, top, right, bottom = map(float, box)
    if box.width < box.height * min_aspect:
        grow = (box.height * min_aspect - box.width) / 2
        left, right = left - grow, right + grow
    elif box.height < box.width * min_aspect:
        grow = (box.width * min_aspect - box.height) / 2
        top, bottom = top - grow, bottom + grow
    (left_px, right_px), (top_px, bottom_px) = _fit(left, right, width), _fit(top, bottom, height)
    return Box(left_px, top_px, right_px, bottom_px)


def subject_box(probability: Alpha, margin: float, min_aspect: float = 0.0, threshold: float = 0.5) -> Box | None:
    """The box around every pixel above ``threshold``, grown by ``margin`` of its size on each side and
    widened to ``min_aspect``; None when nothing is found."""
    rows = np.flatnonzero((probability > threshold).any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero((probability[rows[0] : rows[-1] + 1] > threshold).any(axis=0))
    height, width = probability.shape
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    grow_x, grow_y = (right - left) * margin, (bottom - top) * margin
    box = Box(
        max(0, int(np.floor(left - grow_x))),
        max(0, int(np.floor(top - grow_y))),
        min(width, int(np.ceil(right + grow_x))),
        min(height, int(np.ceil(bottom + grow_y))),
    )
    return widen(box, width, height, min_aspect)


def head_box(person: Alpha, *, size: float = 0.3, top_share: float = 0.12, above: float = 0.05) -> Box | None:
    """A square around the head of the person in ``person`` (a frame-size probability), or None.

    The head is taken to be at the top of the person: the square is centred on the person's pixels in
    the top ``top_share`` of their height, ``size`` times that height wide (at least 1.5 times the width
    of those pixels, so a close portrait's head is all in), starting ``above`` of its side over the top.
    """
    inside = person > 0.5
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    crown = inside[top : top + max(1, round((bottom - top) * top_share))]
    columns = np.flatnonzero(crown.any(axis=0))
    centre = float(np.nonzero(crown)[1].mean())
    side = max(size * (bottom - top), 1.5 * (columns[-1] - columns[0] + 1))
    height, width = person.shape
    start_y = top - above * side
    left, right = _fit(centre - side / 2, centre + side / 2, width)
    upper, lower = _fit(start_y, start_y + side, height)
    return Box(left, upper, right, lower)


def zoomed_probability(
    rgb: RGBImage,
    probe: Probe,
    boxes: list[Box],
    base: Alpha,
    config: RefineConfig,
    whole: tuple[Alpha, float] | None = None,
) -> tuple[Alpha, float]:
    """Average the crop passes over ``boxes`` and paste them into ``base``.

    Inside the crops the zoomed passes replace ``base`` (they see the subject larger); outside it
    stays. ``whole`` is an unflipped pass over the whole frame already made, reused when a box is the
    whole frame. Returns the probability and the scale (photo pixels per model pixel) of the first
    crop, which sets how far the edge step may move the outline.
    """
    height, width = rgb.shape[:2]
    parts: list[tuple[Box, Alpha]] = []  # each pass and where it goes
    scale = 1.0
    for index, box in enumerate(boxes):
        if whole is not None and box == Box(0, 0, width, height):  # the first pass already saw this
            crop, crop_scale = whole
            if config.flip:
                mirrored, _ = model_pass(probe, _mirror(rgb), flip=False)
                crop = (crop + mirrored[:, ::-1]) * np.float32(0.5)
        else:
            crop, crop_scale = model_pass(probe, np.ascontiguousarray(rgb[box.slices()]), flip=config.flip)
        parts.append((box, crop))
        if index == 0:
            scale = crop_scale
        if config.tiles and box.height > 1.6 * box.width:
            cut = round(box.height * 0.6)
            upper = Box(box.left, box.top, box.right, box.top + cut)
            lower = Box(box.left, box.bottom - cut, box.right, box.bottom)
            for tile in (upper, lower):
                part, _ = model_pass(probe, np.ascontiguousarray(rgb[tile.slices()]), flip=config.flip)
                parts.append((tile, part))
    probability = base.copy()
    if len(parts) == 1:  # (most photos: the crops' boxes came out the same) pasted as it is
        box, crop = parts[0]
        probability[box.slices()] = crop
        return probability, scale
    # the passes summed over their union only, then one masked divide (boolean indexing three times
    # took 12 against 5 ms at 2048 x 1536)
    union = Box(min(box.left for box, _ in parts), min(box.top for box, _ in parts),
                max(box.right for box, _ in parts), max(box.bottom for box, _ in parts))
    total = np.zeros((union.height, union.width), np.float32)
    weight = np.zeros((union.height, union.width), np.float32)
    for box, crop in parts:
        rows, columns = box.within(union).slices()
        total[rows, columns] += crop
        weight[rows, columns] += 1.0
    np.divide(total, weight, out=probability[union.slices()], where=weight > 0)
    return probability, scale


def _logit(probability: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # OpenCV's divide and log: NumPy's float32 log and exp took 8 ms per 2.4 million values here,
    # OpenCV's 1.4 ms
    clipped = np.clip(probability, 1e-4, 1 - 1e-4).astype(np.float32, copy=False)
    odds = np.subtract(1.0, clipped, dtype=np.float32)
    cv2.divide(clipped, odds, odds)
    return np.asarray(cv2.log(odds, odds), dtype=np.float32)


def _sigmoid(logit: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))).astype(np.float32)


# Side of the tiles that the guided filter and the mean field run on (``_at_pixels``), and the share of
# a window's tiles above which they run once over the whole window instead (each tile works its margin
# again and costs calls).
_TILE = 64
_WHOLE_WINDOW_SHARE = 0.4


def _at_pixels(function: Callable[..., np.ndarray], planes: tuple[np.ndarray, ...], rows: npt.NDArray[np.int32],
               columns: npt.NDArray[np.int32], reach: int) -> npt.NDArray[np.float32]:
    """``function(*planes)[rows, columns]``, made on the tiles of ``_TILE`` pixels that hold one of the
    pixels only, for a ``function`` of same-size planes whose result at a pixel depends on nothing
    farther than ``reach`` pixels (and on the picture's edge by reflection).

    Each tile is taken with a pixel more than ``reach`` around it (the picture's own edge where the
    margin would leave it): the same values as over the whole picture, to float rounding. The band
    along an outline usually lies in a fifth of its window's tiles or less; above
    ``_WHOLE_WINDOW_SHARE`` of them (hair all around, several people) one pass over the whole picture
    is cheaper than the tiles.
    """
    height, width = planes[0].shape[:2]
    tile, margin = _TILE, reach + 1
    across = -(-width // tile)
    where = (rows // tile) * across + columns // tile
    order = np.argsort(where, kind="stable")
    sorted_tiles = where[order]
    boundaries = np.flatnonzero(np.diff(sorted_tiles)) + 1
    if len(boundaries) + 1 > _WHOLE_WINDOW_SHARE * across * -(-height // tile):
        return np.asarray(function(*planes), dtype=np.float32)[rows, columns]
    # tiles side by side in a row go together, one picture for the run (``_run_starts``)
    starts = np.concatenate(([0], boundaries))
    result = np.empty(rows.shape, dtype=np.float32)
    for group in np.split(order, starts[_run_starts(sorted_tiles[starts], across)]):
        top, bottom, left, right = _run_window(int(where[group[0]]), int(where[group[-1]]), across, margin,
                                               height, width)
        made = function(*(plane[top:bottom, left:right] for plane in planes))
        result[group] = made[rows[group] - top, columns[group] - left]
    return result


# The distance transform's steps (OpenCV's 3 x 3 mask for DIST_L2): a step along a row or column
# costs this much, a diagonal one more, so a path of length d crosses at most d / _STEP pixels.
_STEP = 0.955


def _run_starts(tiles: npt.NDArray[np.integer], across: int) -> npt.NDArray[np.intp]:
    """Where a new run begins in ``tiles`` (ascending row-major tile numbers, ``across`` tiles a row),
    a run being tiles side by side in one row; the first run's start, 0, is left out. Each run is
    worked as one picture with one margin around it: fewer calls than tile by tile, and the margin
    between two tiles is not worked twice."""
    return np.flatnonzero((np.diff(tiles) != 1) | (np.diff(tiles // across) != 0)) + 1


def _run_window(first: int, last: int, across: int, margin: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Top, bottom, left and right of the run of ``_TILE`` pixel tiles ``first`` to ``last`` (row-major
    tile numbers in one row, ``across`` tiles a row) with ``margin`` pixels around it, kept inside the
    ``height`` x ``width`` picture."""
    tile = _TILE
    tile_row, first_column = divmod(first, across)
    last_column = last % across
    return (max(0, tile_row * tile - margin), min(height, (tile_row + 1) * tile + margin),
            max(0, first_column * tile - margin), min(width, (last_column + 1) * tile + margin))


def _near_outline(hard: npt.NDArray[np.uint8], edge: np.ndarray, band: int) -> npt.NDArray[np.uint8]:
    """1 where a pixel of ``hard`` (0 or 1) lies within ``band`` of the other side, 0 elsewhere: the
    pixels where ``distanceTransform(hard) <= band`` and ``distanceTransform(1 - hard) <= band``
    (``DIST_L2``, mask 3), computed on the tiles that hold the outline only.

    ``edge`` marks the pixels on both sides of the outline (a morphological gradient of ``hard``).
    The pixel of the other side nearest to a pixel is on the outline, and the transform's shortest
    path to it runs within ``band / _STEP`` pixels of it: so each tile holding an outline pixel, taken
    with that margin and a pixel more around it, finds every pixel near its outline pixels, at the
    same distances as over the whole picture (a test checks the masks are equal). The outline lies
    in a fifth of its window's tiles or less: two transforms over a 12 MP photo's 2048 px working
    window took 16-45 ms, these 5-16.
    """
    height, width = hard.shape
    tile, reach = _TILE, int(np.ceil(band / _STEP)) + 1
    down, across = -(-height // tile), -(-width // tile)
    padded = np.zeros((down * tile, across * tile), np.uint8)
    padded[:height, :width] = edge
    tiles = np.flatnonzero(padded.reshape(down, tile, across, tile).max(axis=(1, 3)))
    near = np.zeros((height, width), np.uint8)
    for run in np.split(tiles, _run_starts(tiles, across)):
        top, bottom, left, right = _run_window(int(run[0]), int(run[-1]), across, reach, height, width)
        part = hard[top:bottom, left:right]
        depth_in = cv2.distanceTransform(part, cv2.DIST_L2, 3)
        depth_out = cv2.distanceTransform(1 - part, cv2.DIST_L2, 3)
        # (on each side one of the two is 0)
        found = near[top:bottom, left:right]
        found |= ((depth_in <= band) & (depth_out <= band)).view(np.uint8)
    return near


def _guided_filter_at(guide: npt.NDArray[np.uint8], values: npt.NDArray[np.float32], rows: npt.NDArray[np.int32],
                      columns: npt.NDArray[np.int32], radius: int, eps: float) -> npt.NDArray[np.float32]:
    """``cv2.ximgproc.guidedFilter(guide, values, radius, eps)`` at the pixels (``rows``, ``columns``)
    only: the filter reaches ``2 * radius`` pixels (box means of box means)."""
    def guided(guide_tile: np.ndarray, values_tile: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.ximgproc.guidedFilter(guide_tile, values_tile, radius, eps))

    return _at_pixels(guided, (guide, values), rows, columns, 2 * radius)


def _mean_field(unary: npt.NDArray[np.float32], rounds: int) -> npt.NDArray[np.float32]:
    """The negated logit after ``rounds`` of mean-field smoothing of the log-odds ``unary``.

    Each round, logit = unary + 2.25 * (3x3 mean of 2 * sigmoid(logit) - 1), 2.25 being half the 3x3
    neighbours times 0.5. Kept negated, so that exp(-logit) is one OpenCV pass, and 2.25 * (mean(q) - 1)
    = 2.25 * mean(q) - 2.25 for q = 2 * sigmoid: five passes a round, each in OpenCV, where NumPy's
    sigmoid took eleven (with its slow float32 exp). A pixel's result depends on the ``rounds`` pixels
    around it and no farther.
    """
    negated = np.negative(unary)
    negated_shifted = np.subtract(0.5 * 4.5, unary, dtype=np.float32)
    doubled = np.empty_like(unary)
    for _ in range(rounds):
        cv2.exp(negated, doubled)
        cv2.add(doubled, 1.0, doubled)
        cv2.divide(2.0, doubled, doubled)  # 2 * sigmoid(logit)
        agreement = cv2.blur(doubled, (3, 3), borderType=cv2.BORDER_REFLECT)
        negated = cv2.scaleAdd(agreement, -0.5 * 4.5, negated_shifted)
    return negated


# The colour statistics are box means over 2 * radius + 1 pixels (radius = four bands): they are
# gathered on cells of ``radius // COLOUR_CELLS`` pixels a side (6 x 6 for a 12 MP photo's 2048-pixel
# working copy), each cell the mean of its pixels, so that the box filters run on 1/36 of the
# pixels there; band pixels read them bilinearly, so their boxes stay centred on them.
COLOUR_CELLS = 5


class _ColourCells:
    """The window's pixels reduced to cells, and where each band pixel falls among them."""

    def __init__(self, rgb: RGBImage, radius: int, rows: npt.NDArray[np.int32], columns: npt.NDArray[np.int32]):
        height, width = rgb.shape[:2]
        self.factor = factor = max(1, min(radius // COLOUR_CELLS, height, width))
        across, down = width // factor, height // factor
        self.size = (across, down)
        whole = rgb[: down * factor, : across * factor]
        # each cell's mean colour and mean of r^2 + g^2 + b^2 (the squares before averaging, so that the
        # spread within a cell counts: without it a textured subject's spread came out 12% low)
        squares = cv2.multiply(whole, whole, dtype=cv2.CV_16U)  # 8-bit squares fit 16 bits exactly
        if factor > 1:  # whole cells only (an integer ratio is OpenCV's fast area resize); the rest of
            # a row or column, under ``factor`` pixels, joins no cell
            whole = cv2.resize(whole, self.size, interpolation=cv2.INTER_AREA)
            squares = cv2.resize(squares, self.size, interpolation=cv2.INTER_AREA)
        self.cells = np.asarray(whole, dtype=np.float32)
        # summed over the channels in one OpenCV pass (a fifth of the time of splitting them first)
        self.squares = np.asarray(cv2.transform(squares.astype(np.float32), np.ones((1, 3), np.float32)))
        self.rows, self.columns = rows, columns
        # (the band pixels' places among the cells, worked out once for both models)
        self.sample = PointSampler(rows, columns, 1.0 / factor) if factor > 1 else None
        side = 2 * max(1, round(radius / factor)) + 1
        self.kernel = (side, side)

    def model(self, sure: npt.NDArray[np.float32]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Share of ``sure`` pixels (1 or 0) around each band pixel, their mean colour and their variance."""
        factor = self.factor
        if factor > 1:
            across, down = self.size
            sure = cv2.resize(sure[: down * factor, : across * factor], self.size, interpolation=cv2.INTER_AREA)
        # sure, sure * colour, sure * squares: one box filter over the five planes
        planes = cv2.merge([sure, cv2.multiply(self.cells, cv2.merge([sure, sure, sure])),
                            cv2.multiply(self.squares, sure)])
        means = cv2.boxFilter(planes, -1, self.kernel, borderType=cv2.BORDER_REFLECT)
        at = means[self.rows, self.columns] if self.sample is None else self.sample(means)
        share = np.ascontiguousarray(at[:, 0])
        safe = np.maximum(share, 1e-6)
        mean = at[:, 1:4] / per_channel(safe)
        spread = at[:, 4] / safe - np.einsum("ij,ij->i", mean, mean)
        return share, mean, np.maximum(spread / 3.0, 25.0)  # at least 5 levels per channel


def refine_edges(
    rgb: RGBImage,
    probability: Alpha,
    scale: float,
    *,
    band_factor: float = 1.25,
    strength: float = 0.4,
    smoothing: int = 3,
    matte_radius: int = 2,
    matte_eps: float = 1e-4,
) -> Alpha:
    """Move the outline of ``probability`` onto the colour edges of ``rgb`` (both frame size).

    Within ``band_factor * scale`` photo pixels of the outline (``scale`` = photo pixels per model
    pixel: how far off the model's outline can be), every pixel is compared with the subject's and the
    background's colours nearby (mean and spread of the sure pixels around it, four bands away at most).
    That colour log-likelihood ratio, times ``strength``, is added to the model's own log-odds, and a
    few rounds of neighbour smoothing (mean field) keep the result from speckling. Pixels farther from
    the outline, and pixels without both kinds of sure neighbours, keep the model's probability.
    """
    height, width = probability.shape
    shrink = EDGES_LONG_SIDE / max(height, width)
    if shrink < 1:
        # a huge photo: refine a reduced copy and apply its change (the model's outline is 30 photo
        # pixels coarse on an 8K frame; this one is 4)
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        small_probability = upsample(probability, *size)
        small_rgb = np.asarray(shrink_image(rgb, *size), dtype=np.uint8)
        change = refine_edges(
            small_rgb, small_probability, scale * shrink, band_factor=band_factor, strength=strength,
            smoothing=smoothing, matte_radius=matte_radius, matte_eps=matte_eps,
        ) - small_probability
        return np.clip(probability + upsample(change, width, height), 0.0, 1.0)
    band = max(2, round(band_factor * scale))
    radius = 4 * band
    inside = np.greater_equal(probability, 0.5).view(np.uint8)  # (0 or 1, without a copy)
    if not inside.any() or inside.all():
        return probability
    # only the band around the outline changes: work in its bounding box, padded by the colour radius
    edge = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    rows, columns = np.flatnonzero(edge.any(axis=1)), np.flatnonzero(edge.any(axis=0))
    pad = radius + band + 1
    window = Box(
        max(0, int(columns[0]) - pad), max(0, int(rows[0]) - pad),
        min(width, int(columns[-1]) + 1 + pad), min(height, int(rows[-1]) + 1 + pad),
    )
    window_rows, window_columns = window.slices()
    window_rgb = rgb[window_rows, window_columns]
    local = probability[window_rows, window_columns]
    hard = inside[window_rows, window_columns]
    uncertain = _near_outline(hard, edge[window_rows, window_columns], band)
    sure_fg = np.asarray(cv2.subtract(hard, uncertain), dtype=np.float32)
    sure_bg = np.asarray(cv2.subtract(1 - hard, uncertain), dtype=np.float32)
    # colour statistics come from box filters over the window; the likelihoods are needed only on
    # the band's pixels, a tenth of the window or less
    band_rows, band_columns = nonzero_positions(uncertain)
    at_band = window_rgb[band_rows, band_columns].astype(np.float32)
    cells = _ColourCells(window_rgb, radius, band_rows, band_columns)
    fg_share, fg_mean, fg_variance = cells.model(sure_fg)
    bg_share, bg_mean, bg_variance = cells.model(sure_bg)
    fg_offset, bg_offset = at_band - fg_mean, at_band - bg_mean
    fg_distance = np.einsum("ij,ij->i", fg_offset, fg_offset)
    bg_distance = np.einsum("ij,ij->i", bg_offset, bg_offset)
    log_ratio = (
        bg_distance / (2 * bg_variance) - fg_distance / (2 * fg_variance) + 1.5 * np.log(bg_variance / fg_variance)
    )
    usable = (fg_share > 0.02) & (bg_share > 0.02)
    # the colour's evidence, added to the model's log-odds where the mean field reads them
    evidence = np.zeros(local.shape, np.float32)
    evidence[band_rows[usable], band_columns[usable]] = strength * np.clip(log_ratio[usable], -30, 30)
    # the mean field runs on the tiles that hold the band (a fifth of the window's or less), and only
    # the band's pixels take its result, straight into the refined copy's window
    refined = probability.copy()
    decided = refined[window_rows, window_columns]
    decided[band_rows, band_columns] = _sigmoid(-_at_pixels(
        lambda tile, tile_evidence: _mean_field(_logit(tile) + tile_evidence, smoothing), (local, evidence),
        band_rows, band_columns, smoothing))
    if matte_radius > 0:
        # a guided filter makes alpha a local linear function of colour: pixels where hair or an
        # edge mixes with the background get fractional alpha instead of a hard step
        # (a gray guide: nearly the colour guide's composites, measured, at a quarter of the time)
        guide = cv2.cvtColor(np.ascontiguousarray(window_rgb), cv2.COLOR_RGB2GRAY)
        matted = _guided_filter_at(guide, decided, band_rows, band_columns, matte_radius, matte_eps * 255.0**2)
        decided[band_rows, band_columns] = np.clip(matted, 0.0, 1.0)
    return refined


class Refiner:
    """Makes the frame-size foreground probability of one frame as ``RefineConfig`` says.

    ``focus`` is where the zoomed pass looks; ``Focus.HEAD`` needs ``locate``, a probe of a person
    model, when the refiner is called.
    """

    def __init__(self, config: RefineConfig, focus: Focus = Focus.SUBJECT) -> None:
        if not 0 <= config.margin <= 2:
            raise ValueError(f"margin must be in [0, 2], got {config.margin}")
        self.config = config
        self.focus = focus

    def probability(
        self, rgb: RGBImage, probe: Probe, locate: Probe | None = None, first: Callable[[], Alpha] | None = None
    ) -> Alpha:
        """The H x W float32 foreground probability in [0, 1] of ``rgb`` (H x W x 3 uint8): ``passes``
        then ``edges``, on a copy of at most ``WORK_LONG_SIDE`` pixels when ``rgb`` is larger and a step
        is on (the result is enlarged to ``rgb``'s size).

        ``first`` makes the model's plain pass over the whole frame instead of ``probe`` (a video's
        frames go through its VIDEO-mode segmenter there); every other pass goes through ``probe``.
        """
        height, width = rgb.shape[:2]
        return upsample(self._unenlarged(rgb, probe, locate, first), width, height)

    def matte8(self, rgb: RGBImage, probe: Probe, locate: Probe | None = None) -> Matte8:
        """``probability`` as an 8-bit matte (H x W uint8, 0-255), enlarged to ``rgb``'s size in 8 bits.

        A 12 MP photo's float matte is 48 MB, enlarged in 13 ms (more while the heap grows); in 8 bits
        it is 12 MB and 4 ms, and its pixels are within a level of the float matte's rounded, the
        precision of every output.
        """
        height, width = rgb.shape[:2]
        return resize_alpha(alpha_to_uint8(self._unenlarged(rgb, probe, locate)), width, height)

    def _unenlarged(
        self, rgb: RGBImage, probe: Probe, locate: Probe | None = None, first: Callable[[], Alpha] | None = None
    ) -> Alpha:
        """``probability`` before it is enlarged to ``rgb``'s size: at the model's resolution with every
        step off, at the working copy's for a picture larger than ``WORK_LONG_SIDE``, else at its own."""
        if self.config == RefineConfig.off():  # one pass of the model over the whole frame, as it is
            return np.ascontiguousarray(first() if first is not None else probe(rgb), dtype=np.float32)
        height, width = rgb.shape[:2]
        shrink = WORK_LONG_SIDE / max(height, width)
        if shrink < 1 and first is None:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            small = np.asarray(shrink_image(rgb, *size), dtype=np.uint8)
            return self.edges(small, *self.passes(small, probe, locate))
        return self.edges(rgb, *self.passes(rgb, probe, locate, first))

    def passes(
        self, rgb: RGBImage, probe: Probe, locate: Probe | None = None, first: Callable[[], Alpha] | None = None
    ) -> tuple[Alpha, float]:
        """The model's passes (whole frame, crops, mirrors) merged at frame size, and the scale (photo
        pixels per model pixel) of the finest one: what ``edges`` needs."""
        config = self.config
        height, width = rgb.shape[:2]
        if config.zoom and self.focus is Focus.HEAD and locate is not None:
            person, _ = model_pass(locate, rgb, flip=False)
            head = head_box(person)
            if head is not None:  # hair far from the head is a mistake: nothing outside the crop
                return zoomed_probability(rgb, probe, [head], np.zeros((height, width), np.float32), config)
        # with a zoom the crops are flipped; the first pass only has to find the subject
        estimate = model_pass(probe, rgb, flip=config.flip and not config.zoom, known=first() if first else None)
        if config.zoom and self.focus is Focus.SUBJECT:
            boxes: list[Box] = []
            for aspect in config.crop_aspects:
                box = subject_box(estimate[0], config.margin, aspect)
                if box is not None and min(box.width, box.height) >= MIN_CROP and box not in boxes:
                    boxes.append(box)
            if boxes:
                estimate = zoomed_probability(rgb, probe, boxes, estimate[0], config, whole=estimate)
        return estimate

    def edges(self, rgb: RGBImage, probability: Alpha, scale: float) -> Alpha:
        """The edge step on the merged passes, when it is on and the model is coarser than the photo."""
        if self.config.edges and scale >= self.config.edges_min_scale:
            return refine_edges(rgb, probability, scale)
        return probability
