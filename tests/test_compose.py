"""Compositors, checked by pixels on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bgremove.compose import (
    EdgeColours,
    background_blur,
    blend,
    blend_uint8,
    fit_background,
    gather_pixels,
    make_compositor,
    scatter_pixels,
)
from bgremove.config import BgFit, CompositeConfig, CompositeMode
from bgremove.types import Frame


def _half_subject(height: int = 60, width: int = 80) -> tuple[Frame, np.ndarray]:
    """A frame whose left half is the subject (alpha 1) and right half background (alpha 0)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    alpha = np.zeros((height, width), np.float32)
    alpha[:, : width // 2] = 1.0
    return Frame(rgb=rgb), alpha


def test_transparent_is_rgba_with_the_matte_as_alpha() -> None:
    frame, alpha = _half_subject()
    out = make_compositor(CompositeConfig(CompositeMode.TRANSPARENT))(frame, alpha)
    assert out.shape == (60, 80, 4) and out.dtype == np.uint8
    assert np.array_equal(out[:, :40, :3], frame.rgb[:, :40])  # the subject as it was
    assert out[:, :40, 3].min() == 255 and out[:, 40:, 3].max() == 0
    assert not out[:, 40:].any()  # nothing kept where nothing shows


def test_transparent_keeps_what_the_input_already_had_transparent() -> None:
    frame, alpha = _half_subject()
    own_alpha = np.full(alpha.shape, 255, np.uint8)
    own_alpha[:10] = 0
    out = make_compositor(CompositeConfig(CompositeMode.TRANSPARENT))(Frame(frame.rgb, alpha=own_alpha), alpha)
    assert out[:10, :, 3].max() == 0 and out[10:, :40, 3].min() == 255


def test_mask_only_is_the_matte_in_gray() -> None:
    frame, alpha = _half_subject()
    alpha[:, 10] = 0.5
    out = make_compositor(CompositeConfig(CompositeMode.MASK))(frame, alpha)
    assert out.shape == (60, 80) and out.dtype == np.uint8
    assert out[0, 0] == 255 and out[0, 10] == 128 and out[0, 79] == 0


def test_colour_background() -> None:
    frame, alpha = _half_subject()
    out = make_compositor(CompositeConfig(CompositeMode.COLOR, color=(0, 255, 0)))(frame, alpha)
    assert np.array_equal(out[:, :40], frame.rgb[:, :40])
    assert np.all(out[:, 40:] == (0, 255, 0))


def test_image_background_is_fitted_to_the_frame() -> None:
    frame, alpha = _half_subject()
    background = np.zeros((30, 40, 3), np.uint8)
    background[..., 2] = 200
    out = make_compositor(CompositeConfig(CompositeMode.IMAGE), background)(frame, alpha)
    assert np.array_equal(out[:, :40], frame.rgb[:, :40])
    assert np.all(out[:, 40:] == (0, 0, 200))


@pytest.mark.parametrize(
    ("fit", "corner_is_bar"), [(BgFit.COVER, False), (BgFit.CONTAIN, True), (BgFit.STRETCH, False)]
)
def test_background_fit_modes(fit: BgFit, corner_is_bar: bool) -> None:
    wide = np.full((10, 40, 3), 255, np.uint8)  # 4:1 into a 1:1 frame
    fitted = fit_background(wide, 20, 20, fit)
    assert fitted.shape == (20, 20, 3)
    assert (fitted[0, 0].max() == 0) == corner_is_bar
    if fit is BgFit.CONTAIN:
        assert fitted[10, 10].min() == 255  # the picture itself sits in the middle


@settings(max_examples=40, deadline=None)
@given(
    source=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    target=st.tuples(st.integers(1, 90), st.integers(1, 90)),
    data=st.data(),
)
def test_cover_enlarges_only_the_part_that_shows(source, target, data) -> None:
    """Cover enlarging samples only the visible part, as resizing the whole picture and cropping it
    would (within a level: OpenCV's warp and resize round their bilinear weights differently)."""
    import cv2

    picture = data.draw(hnp.arrays(np.uint8, (source[1], source[0], 3)))
    width, height = target
    fitted = fit_background(picture, width, height, BgFit.COVER)
    scale = max(width / source[0], height / source[1])
    scaled_width, scaled_height = max(1, round(source[0] * scale)), max(1, round(source[1] * scale))
    assert fitted.shape == (height, width, 3) and fitted.dtype == np.uint8
    if scaled_width > source[0] or scaled_height > source[1]:
        whole = cv2.resize(picture, (scaled_width, scaled_height), interpolation=cv2.INTER_LINEAR)
        left, top = (scaled_width - width) // 2, (scaled_height - height) // 2
        expected = whole[top : top + height, left : left + width]
        assert np.abs(fitted.astype(int) - expected).max() <= 1


def test_desaturate_grays_only_the_background() -> None:
    frame, alpha = _half_subject()
    out = make_compositor(CompositeConfig(CompositeMode.DESATURATE))(frame, alpha)
    assert np.array_equal(out[:, :40], frame.rgb[:, :40])
    background = out[:, 40:].astype(int)
    assert np.all(background[..., 0] == background[..., 1]) and np.all(background[..., 1] == background[..., 2])


def test_blur_smooths_the_background_and_keeps_the_subject_sharp() -> None:
    frame, alpha = _half_subject(120, 160)
    out = make_compositor(CompositeConfig(CompositeMode.BLUR, blur=45))(frame, alpha)
    assert np.array_equal(out[:, :80], frame.rgb[:, :80])
    assert out[:, 100:].astype(float).std() < frame.rgb[:, 100:].astype(float).std() / 3


def test_blur_does_not_smear_the_subject_into_the_background() -> None:
    # white subject on a black background: a plain blur would spread white over the outline
    rgb = np.zeros((200, 200, 3), np.uint8)
    alpha = np.zeros((200, 200), np.float32)
    rgb[50:150, 50:150] = 255
    alpha[50:150, 50:150] = 1.0
    background = background_blur(rgb, alpha, 45)
    ring = np.ones((200, 200), bool)
    ring[40:160, 40:160] = False  # background pixels within 10 px of the subject, and beyond
    assert background[ring].max() <= 8
    plain = __import__("cv2").GaussianBlur(rgb, (45, 45), 0)
    assert plain[45, 100].max() > 40  # what the naive blur does at the same place


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    data=st.data(),
)
def test_blend_is_exact_at_alpha_0_and_1_and_stays_in_range(shape, data) -> None:
    foreground = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    background = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    alpha = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    out = blend(foreground, background, alpha)
    assert out.shape == (*shape, 3) and out.dtype == np.uint8
    assert np.array_equal(out[alpha == 1], foreground[alpha == 1])
    assert np.array_equal(out[alpha == 0], background[alpha == 0])
    low = np.minimum(foreground, background).astype(int)
    high = np.maximum(foreground, background).astype(int)
    assert np.all(out >= low) and np.all(out <= high)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    data=st.data(),
)
def test_blend_is_within_one_level_of_the_exact_mix(shape, data) -> None:
    foreground = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    background = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    alpha = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    exact = foreground * alpha[..., None].astype(np.float64) + background * (1.0 - alpha[..., None].astype(np.float64))
    assert np.abs(blend(foreground, background, alpha).astype(np.float64) - exact).max() <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    data=st.data(),
)
def test_8_bit_blend_is_exact_at_0_and_255_and_within_a_level_of_the_mix(shape, data) -> None:
    foreground = data.draw(hnp.arrays(np.uint8, shape))
    background = data.draw(hnp.arrays(np.uint8, shape))
    matte = data.draw(hnp.arrays(np.uint8, shape))
    out = blend_uint8(foreground, background, matte)
    assert out.shape == shape and out.dtype == np.uint8
    assert np.array_equal(out[matte == 255], foreground[matte == 255])
    assert np.array_equal(out[matte == 0], background[matte == 0])
    weight = matte.astype(np.float64) / 255
    exact = foreground * weight + background * (1.0 - weight)
    assert np.abs(out - exact).max() <= 1.0 + 1e-9


@pytest.mark.parametrize("kernel", [15, 45, 99])
def test_blur_at_reduced_size_matches_the_full_size_blur(
    kernel: int, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from bgremove import compose

    rgb = np.ascontiguousarray(cv2.resize(astronaut, (641, 481)))  # odd sizes: the shrink pads
    alpha = np.zeros(rgb.shape[:2], np.float32)
    cv2.ellipse(alpha, (320, 330), (130, 170), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (9, 9), 0)
    reduced = background_blur(rgb, alpha, kernel)
    monkeypatch.setattr(compose, "_shrink_factor", lambda sigma: 1)
    full = background_blur(rgb, alpha, kernel)
    difference = np.abs(reduced.astype(int) - full.astype(int))[alpha < 0.01]
    assert reduced.shape == rgb.shape and reduced.dtype == np.uint8
    assert np.percentile(difference, 99) <= 1 and difference.mean() < 0.5


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    decontaminate=st.booleans(),
    data=st.data(),
)
def test_compositors_keep_the_subject_at_alpha_1_and_the_background_at_alpha_0(shape, decontaminate, data) -> None:
    rgb = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    alpha = data.draw(hnp.arrays(np.float32, shape, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
    picture = data.draw(hnp.arrays(np.uint8, (7, 9, 3)))
    frame = Frame(rgb=rgb)
    subject, background = alpha == 1.0, alpha == 0.0
    colour = make_compositor(CompositeConfig(CompositeMode.COLOR, color=(10, 200, 30),
                                             decontaminate=decontaminate))(frame, alpha)
    image = make_compositor(CompositeConfig(CompositeMode.IMAGE, decontaminate=decontaminate), picture)(frame, alpha)
    fitted = fit_background(picture, shape[1], shape[0], BgFit.COVER)
    for out in (colour, image):
        assert out.shape == (*shape, 3) and out.dtype == np.uint8
        assert np.array_equal(out[subject], rgb[subject])
    assert np.all(colour[background] == (10, 200, 30))
    assert np.array_equal(image[background], fitted[background])
    for mode in (CompositeMode.BLUR, CompositeMode.DESATURATE):
        out = make_compositor(CompositeConfig(mode, blur=9, decontaminate=decontaminate))(frame, alpha)
        assert out.shape == (*shape, 3) and out.dtype == np.uint8
        assert np.array_equal(out[subject], rgb[subject])
    transparent = make_compositor(CompositeConfig(CompositeMode.TRANSPARENT, decontaminate=decontaminate))(frame, alpha)
    assert transparent.shape == (*shape, 4)
    assert np.all(transparent[..., 3][subject] == 255) and np.all(transparent[..., 3][background] == 0)
    assert np.array_equal(transparent[..., :3][subject], rgb[subject])


@pytest.mark.parametrize("count", [0, 1, 1500, 5000])
def test_sample_is_bilinear_and_clamped_at_the_edges(count: int) -> None:
    """The colour step reads its reduced local means at the photo's mixed pixels: bilinear between the
    four nearest samples, the edge sample beyond the edge (checked against the interpolation written out)."""
    from bgremove.mask import PointSampler

    rng = np.random.default_rng(count)
    plane = (rng.random((37, 53, 3)) * 255).astype(np.float32)
    scale = 0.37
    full_height, full_width = 100, 143  # the full-size picture the positions are in
    rows = rng.integers(0, full_height, count)
    columns = rng.integers(0, full_width, count)
    rows[:2], columns[:2] = (0, full_height - 1)[: min(count, 2)], (full_width - 1, 0)[: min(count, 2)]
    sampled = PointSampler(rows, columns, scale)(plane)
    assert sampled.shape == (count, 3) and sampled.dtype == np.float32

    y = np.clip((rows + 0.5) * scale - 0.5, 0, 36)
    x = np.clip((columns + 0.5) * scale - 0.5, 0, 52)
    top, left = np.floor(y).astype(int), np.floor(x).astype(int)
    bottom, right = np.minimum(top + 1, 36), np.minimum(left + 1, 52)
    down, across = (y - top)[:, None], (x - left)[:, None]
    expected = ((plane[top, left] * (1 - across) + plane[top, right] * across) * (1 - down)
                + (plane[bottom, left] * (1 - across) + plane[bottom, right] * across) * down)
    np.testing.assert_allclose(sampled, expected, atol=0.01)


@pytest.mark.parametrize("mode", [CompositeMode.IMAGE, CompositeMode.COLOR])
def test_compositors_serve_frames_of_two_sizes_from_two_threads(mode: CompositeMode) -> None:
    """A batch composites two photos at once (the finishing threads): a background cached for one size
    must never be handed to a frame of the other."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    background = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    compositor = make_compositor(CompositeConfig(mode, color=(0, 128, 255)), background)
    sizes = [(40, 60), (64, 48)]

    def run(index: int) -> tuple[int, ...]:
        height, width = sizes[index % 2]
        frame = Frame(rgb=rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        alpha = np.full((height, width), 0.5, dtype=np.float32)
        return tuple(np.asarray(compositor(frame, alpha)).shape[:2]) + (height, width)

    with ThreadPoolExecutor(2) as pool:
        shapes = list(pool.map(run, range(400)))
    assert all(shape[:2] == shape[2:] for shape in shapes)


def test_transparent_output_carries_the_estimated_edge_colours(astronaut: np.ndarray) -> None:
    """The transparent compositor writes F straight into its RGBA output at the mixed pixels: the same
    pixels as ``estimate_colours``' F beside the matte, the photo's own where it is opaque, and
    (0, 0, 0, 0) where it is fully transparent."""
    import cv2

    from bgremove.compose import alpha_to_uint8, estimate_colours

    height, width = astronaut.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    alpha = np.clip((180.0 - np.hypot(yy - 220.0, xx - 250.0)) / 30.0, 0.0, 1.0).astype(np.float32)
    frame = Frame(rgb=astronaut)
    output = make_compositor(CompositeConfig(CompositeMode.TRANSPARENT))(frame, alpha)
    foreground, _ = estimate_colours(astronaut, alpha, background=False)
    matte = alpha_to_uint8(alpha)
    foreground[matte == 0] = 0
    np.testing.assert_array_equal(output, cv2.merge([foreground, matte]))
    assert (matte == 0).any() and not output[matte == 0].any()
    changed = np.any(output[..., :3] != astronaut, axis=2) & (matte > 0)
    assert changed.any() and np.all((alpha[changed] > 0) & (alpha[changed] < 1))


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 24), st.integers(1, 24)), data=st.data())
def test_blend_with_edge_colours_mixes_them_in_place_of_the_foreground(shape, data) -> None:
    """The edge colours (``edge_colours``' F) go into the blend at their pixels as if pasted into the
    foreground first, sparse edge or dense (the one-pass path), without touching the inputs."""
    foreground = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    background = data.draw(hnp.arrays(np.uint8, (*shape, 3)))
    alpha = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    if data.draw(st.booleans()):  # a sharp matte, the sparse path: only every 16th pixel may mix
        flat = alpha.reshape(-1)
        sharp = np.arange(flat.size) % 16 != 0
        flat[sharp] = np.round(flat[sharp])
    matte = np.rint(alpha * 255)
    rows, columns = np.nonzero((matte > 0) & (matte < 255))
    colours = data.draw(hnp.arrays(np.uint8, (rows.size, 3)))
    pasted = foreground.copy()
    pasted[rows, columns] = colours
    exact = pasted * alpha[..., None].astype(np.float64) + background * (1.0 - alpha[..., None].astype(np.float64))
    kept = foreground.copy(), background.copy()
    where = (rows * shape[1] + columns).astype(np.intp)  # their flat positions
    weight = np.repeat(alpha[rows, columns].reshape(-1, 1), 3, axis=1)
    out = blend(foreground, background, alpha, edge=EdgeColours(where, weight, colours, None))
    assert np.abs(out.astype(np.float64) - exact).max() <= 1.0
    assert np.array_equal(out[matte == 255], foreground[matte == 255])
    assert np.array_equal(foreground, kept[0]) and np.array_equal(background, kept[1])


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 3, 4])),
       dtype=st.sampled_from([np.uint8, np.float32]), data=st.data())
def test_pixels_gathered_and_scattered_whole_are_what_fancy_indexing_gives(shape, dtype, data) -> None:
    """``gather_pixels`` and ``scatter_pixels`` move whole pixels through a void view: the same values as
    NumPy's row indexing, for any channel count and type, repeated positions included when gathering."""
    pixels = data.draw(hnp.arrays(dtype, shape, elements=st.integers(0, 255)))
    count = shape[0] * shape[1]
    where = np.asarray(data.draw(st.lists(st.integers(0, count - 1), max_size=3 * count)), dtype=np.intp)
    np.testing.assert_array_equal(gather_pixels(pixels, where), pixels.reshape(count, -1)[where])
    unique = np.unique(where)
    values = data.draw(hnp.arrays(dtype, (unique.size, shape[2]), elements=st.integers(0, 255)))
    expected = pixels.copy()
    expected.reshape(count, -1)[unique] = values
    scatter_pixels(pixels, unique, values)
    np.testing.assert_array_equal(pixels, expected)
