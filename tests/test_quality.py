"""Quality steps: zoom and flip passes, head crop, edge refinement, colour decontamination, video.

Unit tests on small synthetic arrays (a fake probe stands in for the model), then a few checks on real
labelled photos that fail if a step stops paying for itself (bench/eval.py has the full numbers).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from data_paths import data_folder, model_file
from helpers import iou, load
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bgremove.compose import estimate_colours, make_compositor
from bgremove.config import CompositeConfig, CompositeMode, Focus, RefineConfig, SegmenterConfig
from bgremove.refine import Box, Refiner, head_box, model_pass, refine_edges, subject_box, widen
from bgremove.types import Frame

# --- a fake model ---------------------------------------------------------------------------------------


class BrightProbe:
    """A 'model' with a 16x16 input that calls bright pixels foreground; records what it was shown."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        self.shapes.append(rgb.shape)
        small = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32)
        return np.clip(small.mean(axis=2) / 255.0, 0.0, 1.0)


def _square_scene(size: int = 200, left: int = 120, top: int = 40, side: int = 30) -> np.ndarray:
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[top : top + side, left : left + side] = 255
    return rgb


# --- boxes ----------------------------------------------------------------------------------------------


def test_subject_box_grows_by_the_margin_and_is_none_when_nothing_is_found() -> None:
    probability = np.zeros((100, 200), np.float32)
    probability[20:40, 50:70] = 0.9
    assert subject_box(probability, margin=0.0) == Box(50, 20, 70, 40)
    assert subject_box(probability, margin=0.5) == Box(40, 10, 80, 50)
    assert subject_box(np.zeros((10, 10), np.float32), margin=0.1) is None


@pytest.mark.parametrize(
    ("box", "aspect", "expected"),
    [
        (Box(90, 0, 110, 100), 0.5, Box(75, 0, 125, 100)),  # a tall box widened around its centre
        (Box(0, 0, 20, 100), 0.5, Box(0, 0, 50, 100)),  # at the left border it slides inward
        (Box(185, 0, 200, 100), 0.75, Box(125, 0, 200, 100)),  # at the right border too
        (Box(0, 40, 200, 60), 0.5, Box(0, 0, 200, 100)),  # a wide box grows as tall as the frame allows
        (Box(10, 10, 60, 60), 0.75, Box(10, 10, 60, 60)),  # square enough already
    ],
)
def test_widen_takes_real_pixels_around_the_box(box: Box, aspect: float, expected: Box) -> None:
    assert widen(box, 200, 100, aspect) == expected


def test_head_box_is_a_square_at_the_top_of_a_standing_person() -> None:
    person = np.zeros((400, 200), np.float32)
    person[40:80, 90:120] = 1.0  # head
    person[80:380, 70:140] = 1.0  # body
    box = head_box(person)
    assert box is not None
    assert box.top <= 40 and box.bottom >= 80 and box.left <= 90 and box.right >= 120
    assert abs(box.width - box.height) <= 1 and box.height < 200  # a square, not the whole person
    assert head_box(np.zeros((50, 50), np.float32)) is None


def test_head_box_of_a_close_portrait_covers_the_head() -> None:
    person = np.zeros((100, 100), np.float32)
    person[10:, 20:80] = 1.0
    box = head_box(person)
    assert box is not None and box.left <= 20 and box.right >= 80 and box.top <= 10


# --- passes ---------------------------------------------------------------------------------------------


def test_model_pass_is_frame_sized_and_says_its_scale() -> None:
    probe = BrightProbe()
    probability, scale = model_pass(probe, _square_scene(), flip=False)
    assert probability.shape == (200, 200) and probability.dtype == np.float32
    assert scale == pytest.approx(200 / 16)
    assert probability.min() >= 0.0 and probability.max() <= 1.0


def test_flip_averages_with_the_mirrored_pass() -> None:
    def lopsided(rgb: np.ndarray) -> np.ndarray:  # a model that always sees a bit more on the left
        probability = np.zeros((8, 8), np.float32)
        probability[:, :3] = 1.0
        return probability

    probability, _ = model_pass(lopsided, np.zeros((8, 8, 3), np.uint8), flip=True)
    assert np.allclose(probability[:, :3], 0.5) and np.allclose(probability[:, -3:], 0.5)
    assert np.allclose(probability[:, 3:5], 0.0)


def test_zoom_runs_the_model_on_a_crop_around_the_subject() -> None:
    probe = BrightProbe()
    scene = _square_scene()
    config = dataclasses.replace(RefineConfig.off(), zoom=True, crop_aspects=(0.0,))
    probability = Refiner(config).probability(scene, probe)
    assert probe.shapes[0] == (200, 200, 3) and len(probe.shapes) == 2
    crop_height, crop_width = probe.shapes[1][:2]
    assert crop_height < 60 and crop_width < 60  # the square and its margin, not the frame
    truth = scene[..., 0] > 0
    one_pass = Refiner(RefineConfig.off()).probability(scene, probe)
    assert iou(probability >= 0.5, truth) > iou(one_pass >= 0.5, truth)
    assert iou(probability >= 0.5, truth) > 0.9


def test_zoom_with_nothing_found_keeps_the_first_pass() -> None:
    probe = BrightProbe()
    probability = Refiner(RefineConfig()).probability(np.zeros((50, 60, 3), np.uint8), probe)
    assert probability.shape == (50, 60) and probability.max() == 0.0
    assert len(probe.shapes) == 1


def test_a_speck_is_not_zoomed_into() -> None:
    probe = BrightProbe(size=160)
    scene = np.zeros((160, 160, 3), np.uint8)
    scene[80:83, 80:83] = 255  # 3 x 3 pixels: a crop of it would be all the model sees
    Refiner(dataclasses.replace(RefineConfig(), edges=False)).probability(scene, probe)
    assert len(probe.shapes) == 1


def test_a_subject_that_fills_the_frame_reuses_the_first_pass() -> None:
    probe = BrightProbe()
    scene = np.full((64, 64, 3), 255, np.uint8)
    Refiner(dataclasses.replace(RefineConfig(), edges=False)).probability(scene, probe)
    assert len(probe.shapes) == 2  # the first pass and its mirror, no crop pass of the same pixels


def test_head_focus_runs_the_model_on_the_head_of_the_located_person() -> None:
    scene = np.zeros((400, 200, 3), np.uint8)
    scene[40:80, 90:120] = 255
    scene[80:380, 70:140] = 255
    hair = BrightProbe()
    config = dataclasses.replace(RefineConfig.off(), zoom=True)
    probability = Refiner(config, Focus.HEAD).probability(scene, hair, locate=BrightProbe())
    crop_height, crop_width = hair.shapes[0][:2]
    assert crop_height == crop_width and crop_height < 200  # a square around the head only
    assert probability[300:].max() == 0.0  # nothing far from the head


def test_refiner_rejects_a_silly_margin() -> None:
    with pytest.raises(ValueError, match="margin"):
        Refiner(dataclasses.replace(RefineConfig(), margin=5.0))


# --- edges ----------------------------------------------------------------------------------------------


def _coarse_edge_case() -> tuple[np.ndarray, np.ndarray]:
    """A photo whose subject ends at column 60, and a coarse model's probability that ends at 67."""
    rng = np.random.default_rng(1)
    rgb = np.empty((80, 120, 3), np.uint8)
    rgb[:, :60] = (200, 60, 50)
    rgb[:, 60:] = (40, 90, 200)
    rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    columns = np.arange(120, dtype=np.float32)
    probability = np.tile(1.0 / (1.0 + np.exp((columns - 67.0) / 2.5)), (80, 1)).astype(np.float32)
    return rgb, probability


@pytest.mark.parametrize("dense", [False, True])  # a band over a quarter of the tiles; nearly every pixel
def test_guided_filter_at_some_pixels_matches_the_filter_over_the_whole_picture(dense: bool) -> None:
    import cv2

    from bgremove import refine

    rng = np.random.default_rng(7)
    guide = cv2.GaussianBlur(rng.integers(0, 256, (500, 641), dtype=np.uint8), (5, 5), 0)
    values = rng.random((500, 641), dtype=np.float32)
    chosen = rng.random((500, 641)) < 0.9
    if not dense:  # rows 58-70 cross the tiles' boundary at 64, as an outline does
        chosen[:58], chosen[71:] = False, False
    rows, columns = (axis.astype(np.int32) for axis in np.nonzero(chosen))
    whole = cv2.ximgproc.guidedFilter(guide, values, 2, 0.0001 * 255**2)
    at = refine._guided_filter_at(guide, values, rows, columns, 2, 0.0001 * 255**2)
    assert at.shape == rows.shape and np.abs(at - whole[rows, columns]).max() < 1e-5


@pytest.mark.parametrize("dense", [False, True])
def test_mean_field_at_some_pixels_matches_the_rounds_over_the_whole_picture(dense: bool) -> None:
    from bgremove import refine

    rng = np.random.default_rng(8)
    unary = (rng.normal(0, 4, (300, 451))).astype(np.float32)  # log-odds that disagree with neighbours
    chosen = rng.random((300, 451)) < 0.9
    if not dense:  # rows 120-135 cross the tiles' boundary at 128
        chosen[:120], chosen[136:] = False, False
    rows, columns = (axis.astype(np.int32) for axis in np.nonzero(chosen))
    whole = refine._mean_field(unary, 3)
    at = refine._at_pixels(lambda tile: refine._mean_field(tile, 3), (unary,), rows, columns, 3)
    assert np.abs(at - whole[rows, columns]).max() < 1e-5
    # one round too few of margin would show: the tiles' edges are not the picture's
    assert np.abs(whole - unary).max() > 1.0
    if not dense:
        short = refine._at_pixels(lambda tile: refine._mean_field(tile, 3), (unary,), rows, columns, 1)
        assert np.abs(short - whole[rows, columns]).max() > 1e-3


def test_the_band_along_the_outline_on_tiles_matches_distance_transforms_over_the_whole_picture() -> None:
    import cv2

    from bgremove import refine

    # real outlines: full-body people and their bags and hair, at twice their size as on a working copy
    folder = data_folder("fullbody_ccp")
    for path in sorted((folder / "masks_person").iterdir())[:40:8]:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        hard = (cv2.resize(mask, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR) > 127).astype(np.uint8)
        edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        for band in (2, 5, 10, 31):
            near = refine._near_outline(hard, edge, band)
            depth_in = cv2.distanceTransform(hard, cv2.DIST_L2, 3)
            depth_out = cv2.distanceTransform(1 - hard, cv2.DIST_L2, 3)
            whole = (depth_in <= band) & (depth_out <= band)
            assert near.dtype == np.uint8 and np.array_equal(near > 0, whole), (path.name, band)


def test_the_band_on_tiles_needs_its_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from bgremove import refine

    # a disc whose outline keeps to the right of the tiles' boundary at 64 (its left end is at 66):
    # the band outside it reaches into the tiles on the left, which hold no outline
    yy, xx = np.mgrid[:300, :300]
    hard = (np.hypot(yy - 150, xx - 136) < 70).astype(np.uint8)
    edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    whole = refine._near_outline(hard, edge, 12)
    monkeypatch.setattr(refine, "_STEP", 4.0)  # a margin of 4 pixels for a band of 12
    assert not np.array_equal(refine._near_outline(hard, edge, 12), whole)


def test_refine_edges_moves_the_outline_onto_the_colour_edge() -> None:
    rgb, probability = _coarse_edge_case()
    refined = refine_edges(rgb, probability, scale=6.0)
    assert refined.shape == probability.shape and refined.dtype == np.float32
    assert refined.min() >= 0.0 and refined.max() <= 1.0
    crossing = (refined >= 0.5).sum(axis=1)  # columns kept per row
    assert np.all(np.abs(crossing - 60) <= 1), crossing
    assert ((probability >= 0.5).sum(axis=1) == 68).all()  # the model alone was 8 columns off


def test_refine_edges_of_a_huge_photo_works_on_a_reduced_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import bgremove.refine

    monkeypatch.setattr(bgremove.refine, "EDGES_LONG_SIDE", 60)  # the 120-pixel photo counts as huge
    rgb, probability = _coarse_edge_case()
    refined = refine_edges(rgb, probability, scale=6.0)
    assert refined.shape == probability.shape and refined.min() >= 0.0 and refined.max() <= 1.0
    crossing = (refined >= 0.5).sum(axis=1)
    assert np.all(np.abs(crossing - 60) <= 3), crossing  # within a reduced pixel and a half


def test_a_large_photo_is_refined_on_a_reduced_copy_and_only_the_result_enlarged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bgremove.refine

    scene = _square_scene(size=200, left=120, top=40, side=40)
    full = Refiner(RefineConfig()).probability(scene, BrightProbe())
    monkeypatch.setattr(bgremove.refine, "WORK_LONG_SIDE", 100)  # the 200-pixel photo counts as large
    probe = BrightProbe()
    capped = Refiner(RefineConfig()).probability(scene, probe)
    assert capped.shape == (200, 200) and capped.dtype == np.float32
    assert capped.min() >= 0.0 and capped.max() <= 1.0
    assert max(shape[0] for shape in probe.shapes) <= 100  # no pass saw the full-size pixels
    assert iou(capped >= 0.5, full >= 0.5) > 0.9
    assert iou(capped >= 0.5, scene[..., 0] > 0) > 0.85
    # with every step off there is nothing to save: the one pass reads the photo itself
    probe = BrightProbe()
    Refiner(RefineConfig.off()).probability(scene, probe)
    assert probe.shapes == [(200, 200, 3)]


def test_refine_edges_leaves_pixels_far_from_the_outline_alone() -> None:
    rgb, probability = _coarse_edge_case()
    refined = refine_edges(rgb, probability, scale=3.0)
    assert np.array_equal(refined[:, :55], probability[:, :55])
    assert np.array_equal(refined[:, 80:], probability[:, 80:])


def test_colour_statistics_on_cells_match_those_over_every_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    from skimage import data

    import bgremove.refine

    rgb = data.astronaut()  # 512 x 512, real texture on both sides of the outline
    yy, xx = np.mgrid[:512, :512]
    distance = np.hypot(yy - 260, xx - 250) - 150.0
    sure = (distance < -8).astype(np.float32)
    band = np.abs(distance) <= 8
    rows, columns = (positions.astype(np.int32) for positions in np.nonzero(band))
    radius = 32
    cells = bgremove.refine._ColourCells(rgb, radius, rows, columns)
    assert cells.factor == radius // bgremove.refine.COLOUR_CELLS > 1
    monkeypatch.setattr(bgremove.refine, "COLOUR_CELLS", 10_000)  # every pixel its own cell
    exact = bgremove.refine._ColourCells(rgb, radius, rows, columns)
    assert exact.factor == 1
    share, mean, variance = cells.model(sure)
    exact_share, exact_mean, exact_variance = exact.model(sure)
    # the exact box mean, by OpenCV on every pixel (the reference the cells approximate)
    kernel = (2 * radius + 1, 2 * radius + 1)
    assert np.allclose(exact_share, cv2.boxFilter(sure, -1, kernel, borderType=cv2.BORDER_REFLECT)[rows, columns],
                       atol=1e-5)
    assert np.abs(share - exact_share).max() < 0.01
    seen = exact_share > 0.1
    assert np.percentile(np.abs(mean - exact_mean)[seen].max(axis=1), 95) < 5.0  # 8-bit levels
    # the spread within each cell counts too (the standard deviations here are about 55 levels)
    assert np.median(np.abs(np.sqrt(variance) - np.sqrt(exact_variance))[seen]) < 1.5


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_refine_edges_without_an_outline_changes_nothing(value: float) -> None:
    probability = np.full((20, 30), value, np.float32)
    assert refine_edges(np.zeros((20, 30, 3), np.uint8), probability, 4.0) is probability


# --- colours --------------------------------------------------------------------------------------------

RED, GREEN, BLUE = (220, 40, 30), (40, 200, 60), (30, 40, 220)


def _fringe_scene() -> tuple[Frame, np.ndarray]:
    """A red subject on a green background with a soft 8-pixel edge: the edge pixels are red and green."""
    alpha = np.tile(np.clip((70.0 - np.arange(120)) / 8.0, 0.0, 1.0), (60, 1)).astype(np.float32)
    rgb = alpha[..., None] * np.array(RED, np.float32) + (1 - alpha[..., None]) * np.array(GREEN, np.float32)
    return Frame(np.clip(rgb + 0.5, 0, 255).astype(np.uint8)), alpha


def test_estimate_colours_recovers_the_subject_and_background_colours_at_the_edge() -> None:
    frame, alpha = _fringe_scene()
    foreground, background = estimate_colours(frame.rgb, alpha)
    mixed = (alpha > 0.1) & (alpha < 0.9)
    assert np.abs(foreground[mixed].astype(int) - RED).max() <= 12
    assert np.abs(background[mixed].astype(int) - GREEN).max() <= 12
    assert np.array_equal(foreground[alpha >= 1], frame.rgb[alpha >= 1])
    assert np.array_equal(background[alpha <= 0], frame.rgb[alpha <= 0])


def test_estimate_colours_can_make_the_subject_colours_alone() -> None:
    frame, alpha = _fringe_scene()
    both, _ = estimate_colours(frame.rgb, alpha)
    alone, background = estimate_colours(frame.rgb, alpha, background=False)
    assert np.array_equal(alone, both) and background is frame.rgb


def test_colours_of_a_huge_photo_come_from_a_reduced_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import bgremove.compose

    monkeypatch.setattr(bgremove.compose, "COLOUR_LONG_SIDE", 50)
    frame, alpha = _fringe_scene()
    foreground, background = estimate_colours(frame.rgb, alpha)
    mixed = (alpha > 0.1) & (alpha < 0.9)
    assert np.abs(foreground[mixed].astype(int) - RED).max() <= 20
    assert np.abs(background[mixed].astype(int) - GREEN).max() <= 20


@pytest.mark.parametrize("mode", [CompositeMode.COLOR, CompositeMode.TRANSPARENT])
def test_decontamination_removes_the_old_backgrounds_fringe(mode: CompositeMode) -> None:
    frame, alpha = _fringe_scene()

    def green_fringe(decontaminate: bool) -> float:
        config = CompositeConfig(mode, color=BLUE, decontaminate=decontaminate)
        out = make_compositor(config)(frame, alpha)
        edge = (alpha > 0.1) & (alpha < 0.9)
        return float(out[..., 1][edge].astype(float).mean())  # green level where the fringe was

    assert green_fringe(False) > 60
    assert green_fringe(True) < 45  # the subject's own green (40), no more


def test_blur_does_not_bleed_the_subjects_colour_into_the_background() -> None:
    frame, alpha = _fringe_scene()
    gray = np.full_like(frame.rgb, 128)
    rgb = (alpha[..., None] * np.array(RED, np.float32) + (1 - alpha[..., None]) * gray).astype(np.uint8)

    def redness(decontaminate: bool) -> float:
        config = CompositeConfig(CompositeMode.BLUR, blur=61, decontaminate=decontaminate)
        out = make_compositor(config)(Frame(rgb), alpha)
        near = out[:, 72:84].astype(float)  # pure background just outside the edge
        return float((near[..., 0] - near[..., 1]).mean())

    assert redness(False) > 4
    assert redness(True) < 1


def test_desaturated_background_is_gray_up_to_the_subject() -> None:
    frame, alpha = _fringe_scene()

    def colour_behind(decontaminate: bool) -> np.ndarray:
        """R - G of what the output shows behind the subject at the edge (0 for a gray background)."""
        out = make_compositor(CompositeConfig(CompositeMode.DESATURATE, decontaminate=decontaminate))(frame, alpha)
        edge = slice(63, 70)
        behind = (out[:, edge].astype(float) - alpha[:, edge, None] * np.array(RED, float)) / (1 - alpha[:, edge, None])
        return np.abs(behind[..., 0] - behind[..., 1])

    assert colour_behind(False).max() > 100  # the subject's red and the old green in the gray
    assert colour_behind(True).max() < 15


@settings(max_examples=30, deadline=None)
@given(
    rgb=hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
    data=st.data(),
)
def test_estimated_colours_are_frame_sized_and_the_photo_where_alpha_is_0_or_1(rgb, data) -> None:
    alpha = data.draw(hnp.arrays(np.float32, rgb.shape[:2], elements=st.sampled_from([0.0, 0.25, 0.5, 0.999, 1.0])))
    foreground, background = estimate_colours(rgb, alpha)
    assert foreground.shape == rgb.shape and foreground.dtype == np.uint8 and background.dtype == np.uint8
    assert np.array_equal(foreground[alpha >= 254.5 / 255], rgb[alpha >= 254.5 / 255])
    assert np.array_equal(background[alpha < 0.5 / 255], rgb[alpha < 0.5 / 255])


# --- real photos ----------------------------------------------------------------------------------------


def _labelled(folder_name: str, masks: str, count: int) -> list[tuple[Frame, np.ndarray]]:
    from bgremove.media import read_image

    folder = data_folder(folder_name)
    images = sorted((folder / "images").iterdir())
    step = max(1, len(images) // count)  # spread over the set, not its first files
    pairs = []
    for image_path in images[::step][:count]:
        frame, _ = read_image(image_path)
        truth = load(folder / masks / f"{image_path.stem}.png") > 127
        if truth.shape != (frame.height, frame.width):
            import cv2

            truth = cv2.resize(truth.astype(np.uint8), (frame.width, frame.height), interpolation=cv2.INTER_NEAREST) > 0
        pairs.append((frame, truth))
    return pairs


def _mean_iou(model: str, refine: RefineConfig, pairs: list[tuple[Frame, np.ndarray]]) -> float:
    from bgremove.pipeline import Pipeline

    with Pipeline(SegmenterConfig(model), refine=refine) as pipeline:
        return float(np.mean([iou(pipeline.probability(frame) >= 0.5, truth) for frame, truth in pairs]))


@pytest.mark.parametrize(
    ("folder", "masks", "gain"),
    [
        ("person_seg_vikram", "masks", 0.01),
        ("fullbody_ccp", "masks_person", 0.005),
        ("portrait_shen2016", "masks", -0.002),  # no loss on portraits
    ],
)
def test_default_refinement_beats_the_raw_model(folder: str, masks: str, gain: float) -> None:
    model_file("selfie_segmenter.tflite")
    pairs = _labelled(folder, masks, 12)
    raw = _mean_iou("selfie", RefineConfig.off(), pairs)
    default = _mean_iou("selfie", RefineConfig(), pairs)
    print(f"{folder}: raw {raw:.3f}, default {default:.3f}")
    assert default >= raw + gain


def test_head_crop_more_than_doubles_hair_iou_on_full_body_photos() -> None:
    model_file("hair_segmenter.tflite")
    model_file("selfie_segmenter.tflite")
    pairs = _labelled("fullbody_ccp", "masks_hair", 10)
    raw = _mean_iou("hair", RefineConfig.off(), pairs)
    cropped = _mean_iou("hair", RefineConfig(), pairs)
    print(f"hair: raw {raw:.3f}, head crop {cropped:.3f}")
    assert cropped > max(0.5, 2 * raw)


def test_fast_and_quality_switches(tmp_path: Path, astronaut_jpg: Path, run) -> None:
    model_file("selfie_segmenter.tflite")
    for switch in ("--fast", "--quality"):
        result = run(astronaut_jpg, switch, "--mask-only", "--suffix", switch.strip("-"), "-q")
        assert result.exit_code == 0, result.stderr
    fast = load(astronaut_jpg.with_name("astronautfast.png")) > 127
    best = load(astronaut_jpg.with_name("astronautquality.png")) > 127
    assert iou(fast, best) > 0.9
    result = run(astronaut_jpg, "--fast", "--quality")
    assert result.exit_code == 2 and "--fast" in result.stderr and "--quality" in result.stderr


def test_video_default_halves_flicker_on_the_davis_person_clip_without_losing_iou() -> None:
    """The issue's video target, as users get it: the H.264 clip through a video session."""
    from bgremove.config import MaskConfig
    from bgremove.pipeline import Pipeline
    from bgremove.video import VideoReader

    model_file("selfie_segmenter.tflite")
    davis = data_folder("video_davis2016")
    masks = [load(path) > 127 for path in sorted((davis / "dance-twirl" / "masks").glob("*.png"))]
    clip = davis / "videos" / "dance-twirl.mp4"

    def run(refine: RefineConfig, mask: MaskConfig) -> tuple[float, float]:
        pipeline = Pipeline(mask=mask, refine=refine)
        with pipeline, VideoReader(clip) as reader, pipeline.video_session() as session:
            mattes = [alpha for _, alpha in session.mattes(reader.frames())]
        scores = [iou(alpha >= 0.5, truth) for alpha, truth in zip(mattes, masks, strict=True)]
        changes = [np.abs(after - before).mean() for before, after in zip(mattes, mattes[1:], strict=False)]
        return float(np.mean(scores)), float(np.mean(changes))

    raw_iou, raw_flicker = run(RefineConfig.off(), MaskConfig(smooth=0))
    default_iou, default_flicker = run(RefineConfig(), MaskConfig())
    print(f"dance-twirl IoU, flicker: raw {raw_iou:.3f}, {raw_flicker:.4f}; "
          f"default {default_iou:.3f}, {default_flicker:.4f}")
    assert default_flicker <= 0.5 * raw_flicker
    assert default_iou >= raw_iou


# --- 8-bit mattes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("refine", [RefineConfig(), RefineConfig.off()], ids=["default", "fast"])
def test_the_8_bit_matte_is_the_float_matte_rounded_to_within_a_level(
    monkeypatch: pytest.MonkeyPatch, refine: RefineConfig
) -> None:
    """``Refiner.matte8`` enlarges the working copy's result (or the model's, with every step off) in 8
    bits: within a level of the float probability rounded, and from the same passes on the same copy."""
    import bgremove.refine
    from bgremove.compose import alpha_to_uint8

    scene = _square_scene(size=200, left=120, top=40, side=40)
    monkeypatch.setattr(bgremove.refine, "WORK_LONG_SIDE", 100)  # the 200-pixel photo counts as large
    refiner = Refiner(refine)
    probe = BrightProbe()
    matte = refiner.matte8(scene, probe)
    assert matte.dtype == np.uint8 and matte.shape == (200, 200)
    float_probe = BrightProbe()
    expected = alpha_to_uint8(refiner.probability(scene, float_probe))
    assert probe.shapes == float_probe.shapes  # the same passes, on the same pictures
    assert np.abs(matte.astype(int) - expected).max() <= 1
    assert (matte == 0).any() and (matte == 255).any()


def test_a_photo_pipeline_gives_an_8_bit_matte_unless_a_threshold_or_feather_needs_floats(
    astronaut: np.ndarray,
) -> None:
    """``Pipeline.matte`` on a real photo larger than the working copy: 8 bits and within a level of
    ``alpha`` rounded; with ``--threshold`` or ``--feather`` it is ``alpha`` itself."""
    import cv2

    from bgremove.compose import alpha_to_uint8
    from bgremove.config import MaskConfig
    from bgremove.pipeline import Pipeline

    model_file("selfie_segmenter.tflite")
    large = np.ascontiguousarray(cv2.resize(astronaut, (2600, 2600), interpolation=cv2.INTER_CUBIC))
    frame = Frame(rgb=large)
    with Pipeline() as pipeline:
        matte = pipeline.matte(frame)
        alpha = pipeline.alpha(frame)
    assert matte.dtype == np.uint8 and matte.shape == (2600, 2600)
    assert np.abs(matte.astype(int) - alpha_to_uint8(alpha)).max() <= 1
    assert 0.2 < (matte > 127).mean() < 0.8
    for mask in (MaskConfig(threshold=0.5), MaskConfig(feather=3.0)):
        with Pipeline(mask=mask) as pipeline:
            assert pipeline.matte(Frame(rgb=astronaut)).dtype == np.float32


@pytest.mark.parametrize("mode", [CompositeMode.IMAGE, CompositeMode.BLUR, CompositeMode.DESATURATE,
                                  CompositeMode.COLOR, CompositeMode.TRANSPARENT, CompositeMode.MASK])
def test_compositors_take_an_8_bit_matte_as_the_same_matte_in_floats(astronaut: np.ndarray, mode: CompositeMode,
                                                                      tmp_path: Path) -> None:
    """Every compositor gives the same output, to within a level (alpha exactly), from a matte in 8 bits
    as from the same matte in floats: a soft outline, with the colour step on."""
    import cv2
    from PIL import Image

    yy, xx = np.mgrid[:512, :512]
    distance = np.hypot(yy - 260.0, xx - 250.0)
    matte8 = np.clip((170 - distance) * 10 + 128, 0, 255).astype(np.uint8)  # a 25 px soft edge
    background_path = tmp_path / "bg.png"
    Image.fromarray(np.ascontiguousarray(cv2.flip(astronaut, 0))).save(background_path)
    config = CompositeConfig(mode=mode, blur=45, background=background_path if mode is CompositeMode.IMAGE else None)
    background = np.asarray(Image.open(background_path)) if mode is CompositeMode.IMAGE else None
    compositor = make_compositor(config, background)
    frame = Frame(rgb=astronaut)
    from_floats = compositor(frame, matte8.astype(np.float32) / 255.0).astype(int)
    from_bytes = compositor(frame, matte8).astype(int)
    assert from_bytes.shape == from_floats.shape
    if mode is CompositeMode.TRANSPARENT:
        assert np.array_equal(from_bytes[..., 3], from_floats[..., 3])
        shows = from_bytes[..., 3] > 8  # colours under a nearly clear alpha are not seen
        assert np.abs(from_bytes - from_floats)[shows].max() <= 1
    else:
        assert np.abs(from_bytes - from_floats).max() <= 1
