"""(frame, alpha) -> output pixels: transparent, colour, image, blur, desaturate, or the matte itself."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from .config import BgFit, CompositeConfig, CompositeMode
from .mask import (
    PointSampler,
    alpha_as_float,
    alpha_to_uint8,
    enlarged_part,
    nonzero_positions,
    per_channel,
    shrink_image,
)
from .types import Alpha, Frame, Matte8, RGBImage
from .yuv import YUVPlanes, rgb_to_yuv420, yuv420_planes

Pixels = npt.NDArray[np.uint8]  # H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (gray)


class Compositor(Protocol):
    """Makes the output of one frame from the frame and its matte.

    A compositor may also have ``planes(frame, alpha) -> YUVPlanes | None``: the same output made from
    the frame's decoded planes (``Frame.yuv``), which videos use when it is there, and then an
    ``on_planes`` property that says whether it can (videos decide once, before decoding).

    The matte is float32 in [0, 1] (``Alpha``) or 8-bit (``Matte8``, what ``Pipeline.matte`` gives a
    photo): the same output to within a level.
    """

    mode: CompositeMode

    def __call__(self, frame: Frame, alpha: Alpha | Matte8) -> Pixels: ...


# Above this share of mixed pixels (a soft matte), ``blend`` mixes every pixel in one OpenCV pass:
# gathering and scattering that many costs more than the pass. On 12 MP with edge colours, CPU ms at
# the mixed pixels only against one pass, mixed in 5 / 10 / 15 / 25 / 40% (sixth stop, with pixels
# gathered and scattered whole and an 8-bit matte): 19 / 30 / 42 / 62 / 102 against 55 / 58 / 61 / 67
# / 81. Refined photo mattes mix in 2-15% of their pixels (the benchmark's photos: 10-15% for a third).
_DENSE_MIX = 0.25
# Mixed pixels per chunk of the colour step's per-pixel sums: 16,384 pixels' three floats are 192 KB
# an array, and the half dozen arrays a step uses stay in a core's L2 cache.
_CHUNK = 16384


class EdgeColours(NamedTuple):
    """``edge_colours``' result: the mixed pixels (``where``, their flat positions in the photo), alpha
    at them as N x 3 float32 (``weight``, one per channel), F there (``foreground``, N x 3 uint8) and B
    there (``background``; None when it was not asked for). The blend and the writers take the
    positions and the weights from here instead of working them out again (4-5 ms a 12 MP photo)."""

    where: npt.NDArray[np.intp]
    weight: npt.NDArray[np.float32]
    foreground: npt.NDArray[np.uint8]
    background: npt.NDArray[np.uint8] | None


def blend(foreground: RGBImage, background: RGBImage, alpha: Alpha | Matte8, *,
          edge: EdgeColours | None = None, matte8: npt.NDArray[np.uint8] | None = None) -> RGBImage:
    """``foreground * alpha + background * (1 - alpha)`` in uint8: exactly the foreground where the
    8-bit alpha is 255, the background where it is 0, and the mix rounded (within 1 of the exact value)
    where it mixes. ``edge`` (``edge_colours``' result for this ``alpha``) gives the mixed pixels, their
    weights and the foreground colours to use there (F) instead of the foreground's own. ``matte8`` is
    ``alpha_to_uint8(alpha)`` when the caller has it.

    Only the mixed pixels are computed: the others are one masked copy. On a 12 MP photo, whose edge is
    a few percent of it, that takes 21 ms where OpenCV's ``blendLinear`` over every pixel took 45.
    """
    matte = alpha_to_uint8(alpha) if matte8 is None else matte8
    if edge is None:
        where = _flat_index(*nonzero_positions(_mixed(matte)), matte.shape[1])
        weight, colours = None, None
    else:
        where, weight, colours = edge.where, edge.weight, edge.foreground
    if where.size > _DENSE_MIX * matte.size:
        if colours is not None:
            foreground = with_pixels(foreground, where, colours)
        plane = np.ascontiguousarray(alpha_as_float(alpha))
        return np.asarray(cv2.blendLinear(foreground, background, plane, 1.0 - plane), dtype=np.uint8)
    output = np.array(background, dtype=np.uint8, copy=True, order="C")
    cv2.copyTo(np.ascontiguousarray(foreground), np.greater(matte, 254).view(np.uint8), output)
    if where.size:
        if colours is None:
            colours = gather_pixels(np.ascontiguousarray(foreground), where)
        if weight is None:
            weight = per_channel(_alpha_at(alpha, where))
        behind = gather_pixels(np.ascontiguousarray(background), where)
        # colours * weight + behind * (1 - weight), rounded, in two buffers
        mixed = np.multiply(colours, weight)
        shown = np.subtract(1.0, weight)
        shown *= behind
        mixed += shown
        mixed += 0.5
        scatter_pixels(output, where, np.minimum(mixed, 255.0, out=mixed).astype(np.uint8))
    return output


def blend_uint8(foreground: npt.NDArray[np.uint8], background: npt.NDArray[np.uint8],
                alpha: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]:
    """``blend`` with an 8-bit matte (0-255, the shape of one plane): ``f * a / 255`` and
    ``b * (255 - a) / 255``, each rounded to 8 bits, added: exact where the matte is 0 or 255, within 1
    of the exact mix with this matte. OpenCV's 8-bit scaled multiply is its fast path: a 720p luma
    plane takes 3.7 million instructions, against 7.3 million for the sum in 16 bits rounded once
    (within 0.5, which no one sees) and 10 million for ``blend``'s ``blendLinear``. ``out``: where to
    write the result (a plane of the same shape), else a new array."""
    mixed = cv2.multiply(foreground, alpha, dst=out, scale=1 / 255)
    cv2.add(mixed, cv2.multiply(background, cv2.bitwise_not(alpha), scale=1 / 255), dst=mixed)
    return np.asarray(mixed, dtype=np.uint8)


def _alpha_at(alpha: Alpha | Matte8, where: npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
    """Alpha in [0, 1] (float32) at the flat positions ``where`` of a float or an 8-bit matte."""
    return alpha_as_float(np.take(np.ascontiguousarray(alpha).reshape(-1), where))


def fit_background(background: RGBImage, width: int, height: int, fit: BgFit) -> RGBImage:
    """Scale a background to the frame: ``cover`` crops, ``contain`` adds black bars, ``stretch`` distorts."""
    bg_height, bg_width = background.shape[:2]
    if fit is BgFit.STRETCH or (bg_width, bg_height) == (width, height):
        return _resize(background, width, height)
    scale_x, scale_y = width / bg_width, height / bg_height
    scale = max(scale_x, scale_y) if fit is BgFit.COVER else min(scale_x, scale_y)
    scaled_width = max(1, round(bg_width * scale))
    scaled_height = max(1, round(bg_height * scale))
    if fit is BgFit.COVER:
        left = (scaled_width - width) // 2
        top = (scaled_height - height) // 2
        if scaled_width > bg_width or scaled_height > bg_height:
            # only the part that shows: a 1920 x 1080 background covering a 2824 x 4250 portrait was
            # enlarged to 7556 x 4250 first, 96 MB and 56 ms (now 17), two thirds of it thrown away
            return enlarged_part(background, scaled_width, scaled_height, left, top, width, height)
        scaled = _resize(background, scaled_width, scaled_height)
        return np.ascontiguousarray(scaled[top : top + height, left : left + width])
    scaled = _resize(background, scaled_width, scaled_height)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    left = (width - scaled_width) // 2
    top = (height - scaled_height) // 2
    canvas[top : top + scaled_height, left : left + scaled_width] = scaled[:height, :width]
    return canvas


def _resize(pixels: RGBImage, width: int, height: int) -> RGBImage:
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    shrinking = width < pixels.shape[1] and height < pixels.shape[0]
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# Colour estimation works on a picture of at most this long side; larger frames use its local colour
# means, sampled at their own mixed pixels (a 33 MP photo took 10 s at full size, 0.3 s this way).
COLOUR_LONG_SIDE = 1024
# The kernels are box sizes in a photo of this long side or less; a larger photo's colours are
# estimated as on it scaled down to this size (the kernels scaled with it to the working picture).
# Working at 1024 px instead of 2048 with the kernels scaled to match gave the same edge colour error
# (bench/eval.py --sets composite --scale 4 --limit 30, 30 portraits at 2400 x 3200: --bg 10.01
# against 10.02, --blur 2.85, --desaturate 2.10 either way, and the same with the true matte) in
# half the compositing time (78-101 against 171-188 ms a photo); at --scale 2 (1200 x 1600) within
# 0.02 of it, at 40-48 against 93-98 ms.
COLOUR_KERNEL_SIDE = 2048


def _box_mean(plane: npt.NDArray[np.float32], kernel: int, width: int, height: int) -> npt.NDArray[np.float32]:
    """Box mean over ``kernel`` pixels of a frame-size plane; a large kernel runs on a reduced image (a
    90-pixel box mean hardly changes) and comes back bilinearly."""
    shrink = max(1, kernel // 16)
    if shrink == 1:
        return np.asarray(cv2.blur(plane, (kernel, kernel)), dtype=np.float32)
    size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    small_kernel = max(1, round(kernel / shrink))
    small = cv2.blur(shrink_image(plane, *size), (small_kernel, small_kernel))
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def _flat_index(rows: np.ndarray, columns: np.ndarray, width: int) -> npt.NDArray[np.intp]:
    """Positions in a flattened H x W picture: gathering and scattering by them (``np.take``, a reshaped
    view) is twice as fast as indexing with rows and columns."""
    return rows.astype(np.intp) * width + columns


def _pixel_view(pixels: np.ndarray) -> np.ndarray:
    """An H x W x C (C-contiguous) picture as H * W items of C channels each, one NumPy void scalar a
    pixel, sharing its memory."""
    return pixels.reshape(-1).view(np.dtype((np.void, pixels.shape[-1] * pixels.itemsize)))


def gather_pixels(pixels: np.ndarray, where: npt.NDArray[np.intp]) -> np.ndarray:
    """``pixels`` (H x W x C, C-contiguous) at the flat positions ``where``, N x C: each pixel moved as
    one item instead of C values."""
    return np.take(_pixel_view(pixels), where).view(pixels.dtype).reshape(-1, pixels.shape[-1])


def scatter_pixels(pixels: np.ndarray, where: npt.NDArray[np.intp], values: np.ndarray) -> None:
    """Write ``values`` (N x C) into ``pixels`` (H x W x C, C-contiguous) at the flat positions ``where``,
    in place: one item a pixel, about five times faster than assigning N x 3 rows by fancy indexing
    (2.5 against 12 ms for 900,000 pixels of a 12 MP picture)."""
    view = _pixel_view(pixels)
    np.put(view, where, np.ascontiguousarray(values, dtype=pixels.dtype).reshape(-1).view(view.dtype))


def with_pixels(pixels: np.ndarray, where: npt.NDArray[np.intp], values: np.ndarray) -> npt.NDArray[np.uint8]:
    """A C-contiguous uint8 copy of ``pixels`` with ``values`` written at the flat positions ``where``
    (``scatter_pixels``); ``pixels`` stays as it was."""
    copy = np.array(pixels, dtype=np.uint8, copy=True, order="C")
    scatter_pixels(copy, where, values)
    return copy


def _mixed(matte: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Pixels whose 8-bit alpha (``alpha_to_uint8``) is neither 0 nor 255, the only ones where F or B
    shows, as 255 (0 elsewhere): one OpenCV pass over the 8-bit matte, where comparing the float alpha
    twice took 13 ms on a 12 MP photo."""
    return np.asarray(cv2.inRange(matte, 1, 254), dtype=np.uint8)


def _local_colours(
    pixels: npt.NDArray[np.float32], matte: Alpha, kernels: tuple[int, int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Blur-fusion's local subject and background colour means of its last (fine) step, H x W x 3."""
    height, width = matte.shape
    coarse, fine = kernels
    # (the one-plane weights as three planes: see ``mask.per_channel``)
    weight = _repeat(matte, 3)
    # coarse step with F = B = the photo
    # (divisions in place and planes let go as soon as they are used: a 2048 px plane of three floats
    # is 28 MB, and two photos may be composited at once)
    weighted_foreground = pixels * weight
    coarse_alpha = _repeat(_box_mean(matte, coarse, width, height), 3)
    # its F differs from the photo only where alpha mixes; F * alpha is the photo * alpha elsewhere
    mixed = _mixed(alpha_to_uint8(matte))
    # (indexing costs more than it saves once most pixels mix)
    where: tuple[np.ndarray, ...] | tuple[slice, slice] = np.s_[:, :] \
        if np.count_nonzero(mixed) > 0.3 * mixed.size else nonzero_positions(mixed)
    coarse_foreground = _box_mean(weighted_foreground, coarse, width, height)[where] / (coarse_alpha[where] + 1e-5)
    # (the sums below in place, in the planes that are done with: the same float32 operations in the
    # same order as the expressions in the comments, without a new plane for each step)
    coarse_background = _box_mean(np.subtract(pixels, weighted_foreground), coarse, width, height)
    denominator = np.subtract(1.0, coarse_alpha, out=coarse_alpha)
    denominator += 1e-5
    coarse_background /= denominator  # / (1 - coarse_alpha + 1e-5)
    del coarse_alpha, denominator
    first = _fuse(pixels[where], weight[where], coarse_foreground, coarse_background[where])
    weighted_foreground[where] = first * weight[where]
    del first, coarse_foreground
    # fine step: B is the coarse step's
    fine_alpha = _repeat(np.asarray(cv2.blur(matte, (fine, fine)), dtype=np.float32), 3)
    local_foreground = np.asarray(cv2.blur(weighted_foreground, (fine, fine)), dtype=np.float32)
    scratch = np.add(fine_alpha, 1e-5, out=weighted_foreground)
    local_foreground /= scratch  # / (fine_alpha + 1e-5)
    del weighted_foreground, scratch
    coarse_background *= np.subtract(1.0, weight, out=weight)  # * (1 - weight)
    local_background = np.asarray(cv2.blur(coarse_background, (fine, fine)), dtype=np.float32)
    del coarse_background
    denominator = np.subtract(1.0, fine_alpha, out=fine_alpha)
    denominator += 1e-5
    local_background /= denominator  # / (1 - fine_alpha + 1e-5)
    return local_foreground, local_background


def _fuse(pixels: np.ndarray, weight: np.ndarray, foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """F from the pixel and local means: the local F plus the part of the pixel they do not explain,
    ``clip(F + weight * (pixels - weight * F - (1 - weight) * B), 0, 255)``, in two buffers."""
    residue = np.multiply(weight, foreground)
    np.subtract(pixels, residue, out=residue)
    behind = np.subtract(1.0, weight)
    behind *= background
    residue -= behind
    residue *= weight
    residue += foreground
    return np.clip(residue, 0.0, 255.0, out=residue)


def estimate_colours(
    rgb: RGBImage, alpha: Alpha, kernels: tuple[int, int] = (90, 6), *, background: bool = True
) -> tuple[RGBImage, RGBImage]:
    """The subject's own colours and the background's own colours where the two mix at the edge.

    An edge pixel is ``alpha * F + (1 - alpha) * B``; pasting the photo's pixel on a new background keeps
    the old ``B`` in it, a halo. This is the blur-fusion estimate of F (Forte and Pitie 2021, "Approximate
    fast foreground colour estimation"): box means of the subject's and the background's colours around
    the pixel, the pixel's remainder given to F, with a coarse then a fine box (``kernels``). ``B``
    follows from F: ``(rgb - alpha * F) / (1 - alpha)``. Both are H x W x 3 uint8, the photo itself
    wherever alpha rounds to 0 or 1 in 8 bits (the only pixels where F or B shows). Without
    ``background`` only F is made (B is returned as ``rgb`` itself).
    """
    edge = edge_colours(rgb, alpha, kernels, background=background)
    if edge is None:
        return rgb, rgb
    foreground = with_pixels(rgb, edge.where, edge.foreground)
    return foreground, rgb if edge.background is None else with_pixels(rgb, edge.where, edge.background)


def edge_colours(
    rgb: RGBImage, alpha: Alpha | Matte8, kernels: tuple[int, int] = (90, 6), *, background: bool = True,
    matte8: npt.NDArray[np.uint8] | None = None,
) -> EdgeColours | None:
    """``estimate_colours`` at the mixed pixels only (``EdgeColours``: where they are, their weights, F
    there and B there, None without ``background``); None when no pixel mixes. For writing the colours straight
    into an output instead of into copies of the photo. ``matte8`` is ``alpha_to_uint8(alpha)`` when
    the caller has it."""
    height, width = alpha.shape
    mixed = _mixed(alpha_to_uint8(alpha) if matte8 is None else matte8)
    if not cv2.countNonZero(mixed):
        return None
    scale = min(1.0, COLOUR_LONG_SIDE / max(height, width))
    rows, columns = nonzero_positions(mixed)
    del mixed
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_pixels = shrink_image(rgb, *size).astype(np.float32)
        # (an 8-bit matte is shrunk in 8 bits: a quarter of the data, within half a level)
        small_matte = alpha_as_float(np.ascontiguousarray(shrink_image(np.ascontiguousarray(alpha), *size)))
        factor = max(size) / min(max(height, width), COLOUR_KERNEL_SIDE)
        kernels = (max(1, round(kernels[0] * factor)), max(1, round(kernels[1] * factor)))
        local_foreground, local_background = _local_colours(small_pixels, small_matte, kernels)
        sample = PointSampler(rows, columns, size[0] / width)
        sampled_foreground, sampled_background = sample(local_foreground), sample(local_background)
    else:
        local_foreground, local_background = _local_colours(
            rgb.astype(np.float32), np.ascontiguousarray(alpha_as_float(alpha)), kernels)
        sampled_foreground, sampled_background = local_foreground[rows, columns], local_background[rows, columns]
    del local_foreground, local_background
    where = _flat_index(rows, columns, width)
    mixed_pixels = gather_pixels(np.ascontiguousarray(rgb), where)
    mixed_weight = per_channel(_alpha_at(alpha, where))
    foreground_uint8 = np.empty(mixed_pixels.shape, dtype=np.uint8)
    background_uint8 = np.empty(mixed_pixels.shape, dtype=np.uint8) if background else None
    # The sums a chunk at a time (see _CHUNK): over all of a 12 MP photo's 200,000-1,300,000 mixed
    # pixels at once, each of their dozen steps went through memory (12 against 6 ms for the fusion).
    for start in range(0, where.size, _CHUNK):
        part = slice(start, start + _CHUNK)
        pixels, weight = mixed_pixels[part].astype(np.float32), mixed_weight[part]
        foreground_colours = _fuse(pixels, weight, sampled_foreground[part], sampled_background[part])
        if background_uint8 is not None:  # (pixels - weight * F) / max(1 - weight, 0.001), from F before it is rounded
            background_colours = np.multiply(weight, foreground_colours)
            np.subtract(pixels, background_colours, out=background_colours)
            background_colours /= np.maximum(1.0 - weight, 1e-3)
            _round_into(background_colours, background_uint8[part])
        _round_into(foreground_colours, foreground_uint8[part])
    return EdgeColours(where, mixed_weight, foreground_uint8, background_uint8)


def _round_into(colours: npt.NDArray[np.float32], out: npt.NDArray[np.uint8]) -> None:
    """``clip(colours + 0.5, 0, 255)`` as uint8 into ``out``, by way of ``colours``' own buffer (which
    it changes)."""
    colours += 0.5
    np.copyto(out, np.clip(colours, 0, 255, out=colours), casting="unsafe")


def gaussian_sigma(kernel: int) -> float:
    """The sigma OpenCV's ``GaussianBlur((k, k), 0)`` uses, so ``--blur 45`` means what the seed code meant."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


# Weight every pixel gets in the background average besides its own background share: deep inside a
# large subject, where no background is near, the average becomes the plain blur (which the subject
# covers anyway); next to background the subject's pixels count about 1% as much as the background's.
_SUBJECT_WEIGHT = 0.01


def _shrink_factor(sigma: float) -> int:
    """The power-of-two shrink for a blur of ``sigma``: the largest that leaves a sigma of at least 1.5
    pixels at the small size, which bilinear upscaling still renders smoothly (``--blur 45``: 4)."""
    factor = 1
    while sigma / (factor * 2) >= 1.5:
        factor *= 2
    return factor


def _area_shrink(pixels: npt.NDArray[np.generic], factor: int, margin: int = 0) -> npt.NDArray[np.generic]:
    """Average ``factor`` x ``factor`` blocks (``factor`` a power of two) by halving step by step:
    OpenCV's 2:1 INTER_AREA is its fastest path, some ten times faster than one fractional step.

    A height or width that is not a multiple of ``factor`` is extended at the bottom or right by
    reflection, by ``margin`` pixels more than the next multiple: a blur of the small picture that
    reaches no further than ``margin`` then sees the edge reflected where the full picture has it."""
    height, width = pixels.shape[:2]
    pad_bottom = -height % factor + (margin if height % factor else 0)
    pad_right = -width % factor + (margin if width % factor else 0)
    if pad_bottom or pad_right:
        pixels = cv2.copyMakeBorder(pixels, 0, pad_bottom, 0, pad_right, cv2.BORDER_REFLECT)
    while factor > 1:
        pixels = np.asarray(cv2.resize(pixels, (pixels.shape[1] // 2, pixels.shape[0] // 2),
                                       interpolation=cv2.INTER_AREA))
        factor //= 2
    return pixels


def background_blur(rgb: RGBImage, alpha: Alpha | Matte8, kernel: int) -> RGBImage:
    """Blur the background only, so the subject does not smear into it around its outline.

    A normalised convolution: blur(frame * w) / blur(w) with w = (1 - alpha) + 1% averages background
    pixels alone wherever there is background near; where there is none (inside a large subject) it
    becomes the plain blur, and that is under the subject anyway. It runs on the frame shrunk by a
    power of two (block averages) with the sigma reduced to match, and is scaled back up bilinearly:
    for ``--blur 45`` (factor 4) that is within 1 level of the full-size result at 99% of background
    pixels, for some 14 times less work.
    """
    height, width = rgb.shape[:2]
    small_result, factor = _small_background_blur(rgb, alpha, kernel)
    if factor == 1:
        return small_result
    return _enlarge(small_result, factor, width, height)


def _enlarge(small: npt.NDArray[np.uint8], factor: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """A picture of blocks of ``factor`` pixels back to ``width`` x ``height`` (bilinear, without the
    blocks that only padding filled)."""
    return enlarged_part(small, small.shape[1] * factor, small.shape[0] * factor, width=width, height=height)


def _blur_plan(kernel: int) -> tuple[int, float, int, int]:
    """(shrink factor, sigma at the reduced size, kernel size there, margin in full-size pixels)."""
    sigma = gaussian_sigma(kernel)
    factor = _shrink_factor(sigma)
    # block averaging and bilinear upscaling blur a little themselves (variances f^2/12 and f^2/6)
    small_sigma = math.sqrt(max(sigma**2 - factor**2 / 4.0, 0.25)) / factor
    size = 2 * math.ceil(3 * small_sigma) + 1
    return factor, small_sigma, size, factor * (size // 2)


def _normalised_blur(pixels: npt.NDArray[np.uint8], alpha: Alpha, small_sigma: float,
                     size: int) -> npt.NDArray[np.uint8]:
    """blur(pixels * w) / blur(w), w = 1 - alpha + _SUBJECT_WEIGHT, for pixels (H x W x C) and alpha
    (H x W) of the same size."""
    # OpenCV's per-element operations on arrays of the same shape: NumPy broadcasting the weight over
    # the channels took twice the instructions (10.2 against 5.9 million for 320 x 180 x 3)
    weight = np.subtract(1.0 + _SUBJECT_WEIGHT, alpha, dtype=np.float32)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    weighted = cv2.multiply(pixels, _repeat(weight, channels), dtype=cv2.CV_32F)
    blurred = cv2.GaussianBlur(weighted, (size, size), small_sigma, borderType=cv2.BORDER_REFLECT)
    blurred_weight = cv2.GaussianBlur(weight, (size, size), small_sigma, borderType=cv2.BORDER_REFLECT)
    divided = cv2.divide(blurred, _repeat(blurred_weight, channels), dtype=cv2.CV_8U)
    return np.asarray(divided, dtype=np.uint8).reshape(pixels.shape)


def _repeat(plane: npt.NDArray[np.float32], channels: int) -> npt.NDArray[np.float32]:
    """One plane as ``channels`` channels of the same values (the plane itself for one)."""
    return plane if channels == 1 else np.asarray(cv2.merge([plane] * channels), dtype=np.float32)


def _small_background_blur(rgb: RGBImage, alpha: Alpha | Matte8, kernel: int) -> tuple[RGBImage, int]:
    """``background_blur`` at the reduced size, and the factor it is reduced by."""
    factor, small_sigma, size, margin = _blur_plan(kernel)
    small_rgb = _area_shrink(rgb, factor, margin)
    small_alpha = alpha_as_float(np.asarray(_area_shrink(alpha, factor, margin)))
    return _normalised_blur(small_rgb, small_alpha, small_sigma, size), factor


def background_blur_planes(planes: YUVPlanes, alpha: Alpha | Matte8, kernel: int) -> YUVPlanes:
    """``background_blur`` done on 4:2:0 planes: the normalised convolution is linear in the pixels, so
    blurring Y', Cb and Cr is blurring R'G'B' (to rounding), with half the data and no conversion."""
    factor, small_sigma, size, margin = _blur_plan(kernel)
    width, height = planes.width, planes.height
    if factor == 1:  # a small blur: luma at full size, chroma at its own with a matte to match
        weight = alpha_as_float(alpha)
        y = _normalised_blur(planes.y, weight, small_sigma, size)
        half = _area_shrink(weight, 2)
        chroma = _normalised_blur(cv2.merge([planes.u, planes.v]), half, small_sigma / 2, size)
        u, v = cv2.split(chroma)
        return YUVPlanes(y, np.asarray(u, np.uint8), np.asarray(v, np.uint8), planes.colorspace)
    small = cv2.merge([_area_shrink(planes.y, factor, margin), _area_shrink(planes.u, factor // 2, margin // 2),
                       _area_shrink(planes.v, factor // 2, margin // 2)])
    # the matte shrunk as it comes (8 bits: a quarter of the data) and only then made float
    blurred = _normalised_blur(small, alpha_as_float(np.asarray(_area_shrink(alpha, factor, margin))),
                               small_sigma, size)
    y, u, v = cv2.split(blurred)
    return YUVPlanes(_enlarge(np.asarray(y, np.uint8), factor, width, height),
                     _enlarge(np.asarray(u, np.uint8), factor // 2, width // 2, height // 2),
                     _enlarge(np.asarray(v, np.uint8), factor // 2, width // 2, height // 2), planes.colorspace)


class _ColourStep:
    """A compositor that may run the colour step (``estimate_colours``) on the subject's edge."""

    def __init__(self, decontaminate: bool = True) -> None:
        self.decontaminate = decontaminate

    @property
    def on_planes(self) -> bool:
        """Whether ``planes`` can make this compositor's output from a frame's decoded planes: not
        with the colour step, which changes the subject's edge pixels."""
        return not self.decontaminate


class TransparentCompositor(_ColourStep):
    """RGBA: the matte as alpha; with ``decontaminate`` the edge pixels carry the subject's own colours."""

    mode = CompositeMode.TRANSPARENT

    def __call__(self, frame: Frame, alpha: Alpha | Matte8) -> Pixels:
        # only pixels whose 8-bit alpha mixes get new colours, written straight into the output
        matte = alpha_to_uint8(alpha)
        edge = edge_colours(frame.rgb, alpha, background=False, matte8=matte) if self.decontaminate else None
        if frame.alpha is not None:  # what was already transparent stays so
            matte = np.asarray((matte.astype(np.uint16) * frame.alpha + 127) // 255, dtype=np.uint8)
        # Fully transparent pixels are (0, 0, 0, 0), as rembg writes them: nothing shows there, and the
        # old background kept invisible in them made a 12 MP cut-out's PNG 4.3 times larger (10.8
        # against 2.5 MB) and its deflating 3.5 times slower (116 against 33 ms).
        visible = np.greater(matte, 0).view(np.uint8)
        rgb = np.asarray(cv2.bitwise_and(frame.rgb, frame.rgb, mask=visible), dtype=np.uint8)
        if edge is not None:  # the subject's own colours at the edge, before alpha joins them
            where, foreground = edge.where, edge.foreground
            if frame.alpha is not None:  # (without, every mixed pixel is visible)
                foreground = foreground * per_channel(np.take(visible.reshape(-1), where))
            scatter_pixels(rgb, where, foreground)
        return np.asarray(cv2.merge([rgb, matte]), dtype=np.uint8)

    def planes(self, frame: Frame, alpha: Alpha | Matte8) -> YUVPlanes | None:
        """The frame's own decoded planes with the matte as alpha (see ``_OpaqueCompositor.planes``)."""
        source = frame.yuv
        if source is None or frame.alpha is not None or not self.on_planes:
            return None
        matte = alpha_to_uint8(alpha)
        # fully transparent pixels black, as in ``__call__`` (limited range: Y' 16, Cb and Cr 128; a
        # chroma sample where its four pixels average under half a level of alpha, which nothing shows)
        y = np.full_like(source.y, 16)
        cv2.copyTo(source.y, np.greater(matte, 0).view(np.uint8), y)
        shows = np.greater(np.asarray(_area_shrink(matte, 2)), 0).view(np.uint8)
        u, v = np.full_like(source.u, 128), np.full_like(source.v, 128)
        cv2.copyTo(source.u, shows, u)
        cv2.copyTo(source.v, shows, v)
        return YUVPlanes(y, u, v, source.colorspace, a=matte)


class MaskCompositor:
    mode = CompositeMode.MASK

    def __call__(self, frame: Frame, alpha: Alpha | Matte8) -> Pixels:
        return alpha_to_uint8(alpha)


class _OpaqueCompositor(_ColourStep):
    """Shared part of the compositors that put something opaque behind the subject.

    With ``decontaminate`` the photo is first split into the subject's and the background's own colours
    at the edge (``estimate_colours``): the subject is pasted without the old background's tint, and
    a background made from the photo (blur, desaturate) is made without the subject's colours.
    """

    mode: CompositeMode
    # whether ``background`` reads ``behind`` (a background made from the photo): only then is the
    # background's own colour at the edge worth estimating
    reads_behind = False

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        """The new background; ``behind`` is the photo's own background colours (the photo where the
        colours are not split)."""
        raise NotImplementedError

    def __call__(self, frame: Frame, alpha: Alpha | Matte8) -> Pixels:
        if frame.alpha is not None:  # pixels transparent in the input show the new background
            alpha = alpha_as_float(alpha) * (frame.alpha.astype(np.float32) / 255.0)
        behind, edge, matte = frame.rgb, None, alpha_to_uint8(alpha)
        if self.decontaminate:
            edge = edge_colours(frame.rgb, alpha, background=self.reads_behind, matte8=matte)
            if edge is not None and edge.background is not None:
                behind = with_pixels(frame.rgb, edge.where, edge.background)
        # the subject's colours go straight into the blend: no copy of the photo with them
        return blend(frame.rgb, self.background(frame, alpha, behind), alpha, edge=edge, matte8=matte)

    def planes(self, frame: Frame, alpha: Alpha | Matte8) -> YUVPlanes | None:
        """The output as 4:2:0 planes in the frame's own matrix, when the frame carries its decoded
        planes (``Frame.yuv``), else None: the subject's pixels are the input's exactly, and only the
        background is converted. The planes are blended with the matte in 8 bits (``blend_uint8``),
        chroma with its average over each 2 x 2 block.

        A compositor that changes the subject's pixels must offer no planes (return None), or do the
        same to them here: with the colour step (``decontaminate``) there are none."""
        source = frame.yuv
        if source is None or frame.alpha is not None or not self.on_planes:
            return None
        background = self.background_planes(frame, alpha, source.colorspace)
        matte = alpha_to_uint8(alpha)  # the precision the 8-bit planes can show
        half = np.asarray(_area_shrink(matte, 2), dtype=np.uint8)
        # blended straight into one buffer in yuv420p's layout, which the encoder wraps without a copy
        output = yuv420_planes(source.width, source.height, source.colorspace)
        blend_uint8(source.y, background.y, matte, out=output.y)
        blend_uint8(source.u, background.u, half, out=output.u)
        blend_uint8(source.v, background.v, half, out=output.v)
        return output

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        return rgb_to_yuv420(np.ascontiguousarray(self.background(frame, alpha, frame.rgb)), colorspace)


class ColorCompositor(_OpaqueCompositor):
    mode = CompositeMode.COLOR

    def __init__(self, color: tuple[int, int, int], decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.color = np.array(color, dtype=np.uint8)
        self._filled: RGBImage | None = None
        self._planes: tuple[tuple[int, int, int], YUVPlanes] | None = None

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        # made once per frame size: blendLinear wants real pixels, not a broadcast view (read into a
        # local first: another thread may replace the cache meanwhile)
        filled = self._filled
        if filled is None or filled.shape != frame.rgb.shape:
            filled = np.empty(frame.rgb.shape, dtype=np.uint8)
            # one row, then row copies: broadcasting the colour into every pixel took 30-60 ms at 12 MP,
            # this 3 ms (photos of a batch differ in size, so each one fills its own)
            filled[0] = self.color
            filled[1:] = filled[0]
            self._filled = filled
        return filled

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        key = (frame.width, frame.height, colorspace)
        if self._planes is None or self._planes[0] != key:
            block = rgb_to_yuv420(np.full((2, 2, 3), self.color, np.uint8), colorspace)
            y, u, v = int(block.y[0, 0]), int(block.u[0, 0]), int(block.v[0, 0])
            height, width = frame.height, frame.width
            self._planes = (key, YUVPlanes(np.full((height, width), y, np.uint8),
                                           np.full((height // 2, width // 2), u, np.uint8),
                                           np.full((height // 2, width // 2), v, np.uint8), colorspace))
        return self._planes[1]


class ImageCompositor(_OpaqueCompositor):
    """A still background, fitted once per frame size."""

    mode = CompositeMode.IMAGE

    def __init__(self, background: RGBImage, fit: BgFit, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.source = background
        self.fit = fit
        self._fitted: dict[tuple[int, int], RGBImage] = {}
        self._planes: tuple[tuple[int, int, int], YUVPlanes] | None = None

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        key = (frame.width, frame.height)
        fitted = self._fitted.get(key)
        if fitted is None:  # a new dict, not an update: another thread may be reading the old one
            fitted = fit_background(self.source, frame.width, frame.height, self.fit)
            self._fitted = {key: fitted}
        return fitted

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        key = (frame.width, frame.height, colorspace)
        if self._planes is None or self._planes[0] != key:  # converted once per video
            self._planes = (key, rgb_to_yuv420(self.background(frame, alpha, frame.rgb), colorspace))
        return self._planes[1]


class MovingImageCompositor(_OpaqueCompositor):
    """A moving background: ``source(timestamp)`` gives the background picture for each frame's time
    (a video decoded in step with the input), fitted to the frame like a still one."""

    mode = CompositeMode.IMAGE

    def __init__(self, source: Callable[[float], RGBImage], fit: BgFit, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.source = source
        self.fit = fit
        self._last: tuple[RGBImage, tuple[int, int], RGBImage] | None = None
        self._last_planes: tuple[RGBImage, int, YUVPlanes] | None = None

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        picture = self.source(frame.timestamp)
        key = (frame.width, frame.height)
        # A background slower than the video repeats its frames: fit each picture once.
        if self._last is None or self._last[0] is not picture or self._last[1] != key:
            self._last = (picture, key, fit_background(picture, frame.width, frame.height, self.fit))
        return self._last[2]

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        fitted = self.background(frame, alpha, frame.rgb)
        if self._last_planes is None or self._last_planes[0] is not fitted or self._last_planes[1] != colorspace:
            self._last_planes = (fitted, colorspace, rgb_to_yuv420(fitted, colorspace))
        return self._last_planes[2]


class BlurCompositor(_OpaqueCompositor):
    mode = CompositeMode.BLUR
    reads_behind = True

    def __init__(self, kernel: int, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        if kernel < 1:
            raise ValueError(f"blur must be at least 1, got {kernel}")
        self.kernel = kernel

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        return background_blur(behind, alpha, self.kernel)

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        """The frame's own planes blurred: no RGB needed."""
        assert frame.yuv is not None
        return background_blur_planes(frame.yuv, alpha, self.kernel)


class DesaturateCompositor(_OpaqueCompositor):
    mode = CompositeMode.DESATURATE
    reads_behind = True

    def background(self, frame: Frame, alpha: Alpha | Matte8, behind: RGBImage) -> RGBImage:
        gray = cv2.cvtColor(np.ascontiguousarray(behind), cv2.COLOR_RGB2GRAY)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)

    def background_planes(self, frame: Frame, alpha: Alpha | Matte8, colorspace: int) -> YUVPlanes:
        """The frame's own luma with neutral chroma."""
        assert frame.yuv is not None
        neutral = np.full(frame.yuv.u.shape, 128, np.uint8)
        return YUVPlanes(frame.yuv.y, neutral, neutral, colorspace)


def make_compositor(config: CompositeConfig, background: RGBImage | None = None) -> Compositor:
    """The compositor for ``config``; ``background`` is the decoded ``--bg`` image for IMAGE mode."""
    mode = config.mode
    clean = config.decontaminate
    if mode is CompositeMode.TRANSPARENT:
        return TransparentCompositor(clean)
    if mode is CompositeMode.MASK:
        return MaskCompositor()
    if mode is CompositeMode.COLOR:
        return ColorCompositor(config.color, clean)
    if mode is CompositeMode.BLUR:
        return BlurCompositor(config.blur, clean)
    if mode is CompositeMode.DESATURATE:
        return DesaturateCompositor(clean)
    if background is None:
        raise ValueError("an image background needs the background pixels")
    return ImageCompositor(background, config.fit, clean)
