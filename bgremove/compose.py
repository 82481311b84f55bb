"""(frame, alpha) -> output pixels: transparent, colour, image, blur, desaturate, or the matte itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from .config import BgFit, CompositeConfig, CompositeMode
from .types import Alpha, Frame, RGBImage

Pixels = npt.NDArray[np.uint8]  # H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (gray)


class Compositor(Protocol):
    """Makes the output of one frame from the frame and its matte."""

    mode: CompositeMode

    def __call__(self, frame: Frame, alpha: Alpha) -> Pixels: ...


def blend(foreground: RGBImage, background: RGBImage, alpha: Alpha) -> RGBImage:
    """``foreground * alpha + background * (1 - alpha)`` in uint8, exact where alpha is 0 or 1."""
    weight = alpha[..., None]
    mixed = background.astype(np.float32)
    mixed += (foreground.astype(np.float32) - mixed) * weight
    return np.asarray(np.clip(mixed + 0.5, 0, 255), dtype=np.uint8)


def alpha_to_uint8(alpha: Alpha) -> npt.NDArray[np.uint8]:
    return np.asarray(np.clip(alpha * 255.0 + 0.5, 0, 255), dtype=np.uint8)


def fit_background(background: RGBImage, width: int, height: int, fit: BgFit) -> RGBImage:
    """Scale a background to the frame: ``cover`` crops, ``contain`` adds black bars, ``stretch`` distorts."""
    bg_height, bg_width = background.shape[:2]
    if fit is BgFit.STRETCH or (bg_width, bg_height) == (width, height):
        return _resize(background, width, height)
    scale_x, scale_y = width / bg_width, height / bg_height
    scale = max(scale_x, scale_y) if fit is BgFit.COVER else min(scale_x, scale_y)
    scaled_width = max(1, round(bg_width * scale))
    scaled_height = max(1, round(bg_height * scale))
    scaled = _resize(background, scaled_width, scaled_height)
    if fit is BgFit.COVER:
        left = (scaled_width - width) // 2
        top = (scaled_height - height) // 2
        return np.ascontiguousarray(scaled[top : top + height, left : left + width])
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


def _box_mean(plane: npt.NDArray[np.float32], kernel: int, width: int, height: int) -> npt.NDArray[np.float32]:
    """Box mean over ``kernel`` pixels of a frame-size plane; a large kernel runs on a reduced image (a
    90-pixel box mean hardly changes) and comes back bilinearly."""
    shrink = max(1, kernel // 16)
    if shrink == 1:
        return np.asarray(cv2.blur(plane, (kernel, kernel)), dtype=np.float32)
    size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    small_kernel = max(1, round(kernel / shrink))
    small = cv2.blur(cv2.resize(plane, size, interpolation=cv2.INTER_AREA), (small_kernel, small_kernel))
    return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def estimate_colours(rgb: RGBImage, alpha: Alpha, kernels: tuple[int, int] = (90, 6)) -> tuple[RGBImage, RGBImage]:
    """The subject's own colours and the background's own colours where the two mix at the edge.

    An edge pixel is ``alpha * F + (1 - alpha) * B``; pasting the photo's pixel on a new background keeps
    the old ``B`` in it, a halo. This is the blur-fusion estimate of F (Forte and Pitie 2021, "Approximate
    fast foreground colour estimation"): box means of the subject's and the background's colours around
    the pixel, the pixel's remainder given to F, with a coarse then a fine box (``kernels``). ``B``
    follows from F: ``(rgb - alpha * F) / (1 - alpha)``. Both are H x W x 3 uint8, the photo itself
    wherever alpha rounds to 0 or 1 in 8 bits (the only pixels where F or B shows).
    """
    height, width = alpha.shape
    matte = np.ascontiguousarray(alpha, dtype=np.float32)
    mixed = (matte >= 0.5 / 255) & (matte < 254.5 / 255)
    share = float(mixed.mean())
    if share == 0:
        return rgb, rgb
    # the estimate is needed only where F or B shows: index those pixels unless they are most of the frame
    where: tuple[np.ndarray, np.ndarray] | tuple[slice, slice] = np.nonzero(mixed) if share < 0.3 else np.s_[:, :]
    coarse, fine = kernels
    pixels = rgb.astype(np.float32)
    weight = matte[..., None]
    # coarse pass with F = B = the photo
    weighted_foreground = pixels * weight
    coarse_alpha = _box_mean(matte, coarse, width, height)[..., None]
    coarse_foreground = _box_mean(weighted_foreground, coarse, width, height) / (coarse_alpha + 1e-5)
    coarse_background = _box_mean(pixels - weighted_foreground, coarse, width, height) / (1.0 - coarse_alpha + 1e-5)

    def fused(local_foreground: np.ndarray, local_background: np.ndarray) -> np.ndarray:
        """F at the mixed pixels from the local means there."""
        mixed_pixels = pixels[where]
        mixed_weight = weight[where]
        residue = mixed_pixels - mixed_weight * local_foreground - (1.0 - mixed_weight) * local_background
        return np.clip(local_foreground + mixed_weight * residue, 0.0, 255.0)

    first = fused(coarse_foreground[where], coarse_background[where])
    # fine pass: F * alpha is the photo where alpha is 0 or 1, the coarse F in between; B is the coarse B
    weighted_foreground[where] = first * weight[where]
    fine_alpha = cv2.blur(matte, (fine, fine))[where][..., None]
    fine_foreground = cv2.blur(weighted_foreground, (fine, fine))[where] / (fine_alpha + 1e-5)
    fine_background = (
        cv2.blur(coarse_background * (1.0 - weight), (fine, fine))[where] / (1.0 - fine_alpha + 1e-5)
    )
    foreground_colours = fused(fine_foreground, fine_background)
    mixed_weight = weight[where]
    background_colours = (pixels[where] - mixed_weight * foreground_colours) / np.maximum(1.0 - mixed_weight, 1e-3)
    foreground_uint8, background_uint8 = rgb.copy(), rgb.copy()
    foreground_uint8[where] = np.clip(foreground_colours + 0.5, 0, 255).astype(np.uint8)
    background_uint8[where] = np.clip(background_colours + 0.5, 0, 255).astype(np.uint8)
    if not isinstance(where[0], np.ndarray):  # computed everywhere: keep the photo where nothing mixes
        foreground_uint8[~mixed], background_uint8[~mixed] = rgb[~mixed], rgb[~mixed]
    return foreground_uint8, background_uint8


def gaussian_sigma(kernel: int) -> float:
    """The sigma OpenCV's ``GaussianBlur((k, k), 0)`` uses, so ``--blur 45`` means what the seed code meant."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def background_blur(rgb: RGBImage, alpha: Alpha, kernel: int) -> RGBImage:
    """Blur the background only, so the subject does not smear into it around its outline.

    A normalised convolution: blur(frame * (1 - alpha)) / blur(1 - alpha) averages background pixels
    alone; where no background is near (inside a large subject) the plain blur fills in, and that is
    under the subject anyway. Large kernels run on a reduced image, which a Gaussian barely changes.
    """
    height, width = rgb.shape[:2]
    sigma = gaussian_sigma(kernel)
    scale = max(1.0, sigma / 3.0)
    small_width, small_height = max(1, round(width / scale)), max(1, round(height / scale))
    small_rgb = _resize(rgb, small_width, small_height).astype(np.float32)
    small_weight = np.asarray(
        cv2.resize(1.0 - alpha, (small_width, small_height), interpolation=cv2.INTER_AREA)
        if (small_width, small_height) != (width, height)
        else 1.0 - alpha,
        dtype=np.float32,
    ).reshape(small_height, small_width)
    small_sigma = sigma / scale
    size = 2 * int(np.ceil(3 * small_sigma)) + 1
    blurred_weight = cv2.GaussianBlur(small_weight, (size, size), small_sigma, borderType=cv2.BORDER_REFLECT)
    blurred_sum = cv2.GaussianBlur(small_rgb * small_weight[..., None], (size, size), small_sigma, borderType=cv2.BORDER_REFLECT)
    plain = cv2.GaussianBlur(small_rgb, (size, size), small_sigma, borderType=cv2.BORDER_REFLECT)
    weight = blurred_weight[..., None]
    confident = np.clip(weight * 20.0, 0.0, 1.0)  # trust the background-only average once it has support
    background_only = blurred_sum / np.maximum(weight, 1e-6)
    small_result = background_only * confident + plain * (1.0 - confident)
    small_uint8 = np.asarray(np.clip(small_result + 0.5, 0, 255), dtype=np.uint8)
    return _resize(small_uint8, width, height)


class TransparentCompositor:
    """RGBA: the matte as alpha; with ``decontaminate`` the edge pixels carry the subject's own colours."""

    mode = CompositeMode.TRANSPARENT

    def __init__(self, decontaminate: bool = True) -> None:
        self.decontaminate = decontaminate

    def __call__(self, frame: Frame, alpha: Alpha) -> Pixels:
        matte = alpha_to_uint8(alpha)
        rgb = frame.rgb
        if self.decontaminate:
            foreground, _ = estimate_colours(rgb, alpha)
            rgb = np.where((matte > 0)[..., None], foreground, rgb)  # invisible pixels keep their colour
        if frame.alpha is not None:  # what was already transparent stays so
            matte = np.asarray((matte.astype(np.uint16) * frame.alpha + 127) // 255, dtype=np.uint8)
        return np.dstack([rgb, matte])


class MaskCompositor:
    mode = CompositeMode.MASK

    def __call__(self, frame: Frame, alpha: Alpha) -> Pixels:
        return alpha_to_uint8(alpha)


class _OpaqueCompositor:
    """Shared part of the compositors that put something opaque behind the subject.

    With ``decontaminate`` the photo is first split into the subject's and the background's own colours
    at the edge (``estimate_colours``): the subject is pasted without the old background's tint, and
    a background made from the photo (blur, desaturate) is made without the subject's colours.
    """

    mode: CompositeMode

    def __init__(self, decontaminate: bool = True) -> None:
        self.decontaminate = decontaminate

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        """The new background; ``behind`` is the photo's own background colours (the photo where the
        colours are not split)."""
        raise NotImplementedError

    def __call__(self, frame: Frame, alpha: Alpha) -> Pixels:
        if frame.alpha is not None:  # pixels transparent in the input show the new background
            alpha = alpha * (frame.alpha.astype(np.float32) / 255.0)
        if self.decontaminate:
            foreground, behind = estimate_colours(frame.rgb, alpha)
        else:
            foreground = behind = frame.rgb
        return blend(foreground, self.background(frame, alpha, behind), alpha)


class ColorCompositor(_OpaqueCompositor):
    mode = CompositeMode.COLOR

    def __init__(self, color: tuple[int, int, int], decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.color = np.array(color, dtype=np.uint8)

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        return np.broadcast_to(self.color, frame.rgb.shape)


class ImageCompositor(_OpaqueCompositor):
    """A still background, fitted once per frame size."""

    mode = CompositeMode.IMAGE

    def __init__(self, background: RGBImage, fit: BgFit, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.source = background
        self.fit = fit
        self._fitted: dict[tuple[int, int], RGBImage] = {}

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        key = (frame.width, frame.height)
        if key not in self._fitted:
            self._fitted = {key: fit_background(self.source, frame.width, frame.height, self.fit)}
        return self._fitted[key]


class MovingImageCompositor(_OpaqueCompositor):
    """A moving background: ``source(timestamp)`` gives the background picture for each frame's time
    (a video decoded in step with the input), fitted to the frame like a still one."""

    mode = CompositeMode.IMAGE

    def __init__(self, source: Callable[[float], RGBImage], fit: BgFit, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        self.source = source
        self.fit = fit
        self._last: tuple[RGBImage, tuple[int, int], RGBImage] | None = None

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        picture = self.source(frame.timestamp)
        key = (frame.width, frame.height)
        # A background slower than the video repeats its frames: fit each picture once.
        if self._last is None or self._last[0] is not picture or self._last[1] != key:
            self._last = (picture, key, fit_background(picture, frame.width, frame.height, self.fit))
        return self._last[2]


class BlurCompositor(_OpaqueCompositor):
    mode = CompositeMode.BLUR

    def __init__(self, kernel: int, decontaminate: bool = True) -> None:
        super().__init__(decontaminate)
        if kernel < 1:
            raise ValueError(f"blur must be at least 1, got {kernel}")
        self.kernel = kernel

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        return background_blur(behind, alpha, self.kernel)


class DesaturateCompositor(_OpaqueCompositor):
    mode = CompositeMode.DESATURATE

    def background(self, frame: Frame, alpha: Alpha, behind: RGBImage) -> RGBImage:
        gray = cv2.cvtColor(np.ascontiguousarray(behind), cv2.COLOR_RGB2GRAY)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)


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
