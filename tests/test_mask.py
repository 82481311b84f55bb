"""Confidences -> alpha: class selection, soft/hard, resize, feather."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bgremove.config import MaskConfig
from bgremove.errors import UnknownLabel
from bgremove.mask import (
    MaskProcessor,
    default_keep,
    enlarged_part,
    feather_alpha,
    resize_alpha,
    select_classes,
    shrink_image,
)
from bgremove.types import Segmentation

VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv")


@pytest.mark.parametrize(
    ("labels", "spec_keep", "expected"),
    [
        (("selfie",), None, ("selfie",)),
        (("background", "hair"), ("hair",), ("hair",)),
        (VOC, ("person",), ("person",)),
        (("background", "hair", "body-skin", "face-skin", "clothes", "others"), None,
         ("hair", "body-skin", "face-skin", "clothes", "others")),
    ],
)
def test_default_keep_per_model(labels, spec_keep, expected) -> None:
    assert default_keep(labels, spec_keep) == expected


def test_labels_match_ignoring_case_spaces_and_dashes() -> None:
    assert select_classes(VOC, ["Dining-Table", "pottedplant", "person"]) == [11, 16, 15]


def test_unknown_label_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownLabel) as caught:
        select_classes(("background", "hair"), ["person"], "model 'hair'")
    message = str(caught.value)
    assert "'person'" in message and "model 'hair'" in message and "background, hair" in message
    assert "\n" not in message


def _segmentation(planes: list[np.ndarray], labels: tuple[str, ...]) -> Segmentation:
    return Segmentation(confidences=np.stack(planes).astype(np.float32), labels=labels)


def test_kept_classes_add_up_and_resize_to_the_frame() -> None:
    background = np.full((4, 4), 0.5, np.float32)
    cat = np.zeros((4, 4), np.float32)
    cat[:, :2] = 0.5
    dog = np.zeros((4, 4), np.float32)
    dog[:, 2:] = 0.25
    processor = MaskProcessor(MaskConfig(keep=("cat", "dog")), ("background", "cat", "dog"))
    alpha = processor.alpha(_segmentation([background, cat, dog], ("background", "cat", "dog")), 8, 6)
    assert alpha.shape == (6, 8) and alpha.dtype == np.float32
    assert alpha[:, 0].max() == pytest.approx(0.5) and alpha[:, -1].max() == pytest.approx(0.25)


def test_threshold_gives_a_hard_mask() -> None:
    plane = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    processor = MaskProcessor(MaskConfig(threshold=0.5), ("selfie",))
    alpha = processor.alpha(_segmentation([plane], ("selfie",)), 4, 4)
    assert set(np.unique(alpha)) == {0.0, 1.0}
    assert np.array_equal(alpha == 1.0, plane >= 0.5)


def test_feather_softens_only_near_the_edge() -> None:
    alpha = np.zeros((40, 40), np.float32)
    alpha[:, 20:] = 1.0
    feathered = feather_alpha(alpha, 4)
    assert feathered[:, :12].max() < 0.01 and feathered[:, 28:].min() > 0.99
    assert 0.2 < feathered[0, 20] < 0.8


@settings(max_examples=40, deadline=None)
@given(
    planes=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)),
                      elements=st.floats(-2, 3, width=32)),
    width=st.integers(1, 30),
    height=st.integers(1, 30),
    threshold=st.one_of(st.none(), st.floats(0, 1)),
    feather=st.floats(0, 5),
)
def test_alpha_is_always_a_frame_sized_float_matte_in_0_1(planes, width, height, threshold, feather) -> None:
    labels = tuple(f"class{index}" for index in range(planes.shape[0]))
    processor = MaskProcessor(MaskConfig(threshold=threshold, feather=feather), labels)
    alpha = processor.alpha(Segmentation(planes, labels), width, height)
    assert alpha.shape == (height, width) and alpha.dtype == np.float32
    assert np.all(alpha >= 0) and np.all(alpha <= 1)


@pytest.mark.parametrize(("width", "height"), [(2048, 1152), (1000, 700), (2309, 1299), (4618, 2598)])
def test_shrink_image_is_close_to_area_averages(astronaut: np.ndarray, width: int, height: int) -> None:
    """Large photos are reduced to a 2048 px working copy by halving plus one bilinear step: nearly the
    block averages OpenCV's fractional INTER_AREA gives, in the same dtype, for pictures and mattes."""
    import cv2

    photo = cv2.resize(astronaut, (4618, 2598), interpolation=cv2.INTER_CUBIC)  # a phone-size photo
    reduced = shrink_image(photo, width, height)
    assert reduced.shape == (height, width, 3) and reduced.dtype == np.uint8
    exact = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(np.int16) - exact).mean() < 1.0
    matte = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0).astype(np.float32)
    reduced_matte = shrink_image(matte, width, height)
    assert reduced_matte.shape == (height, width) and reduced_matte.dtype == np.float32
    assert np.abs(reduced_matte - cv2.resize(matte, (width, height), interpolation=cv2.INTER_AREA)).mean() < 0.004


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_nonzero_positions_are_numpys_in_its_order(data) -> None:
    from bgremove.mask import nonzero_positions

    shape = (data.draw(st.integers(1, 50)), data.draw(st.integers(1, 50)))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    rows, columns = nonzero_positions(mask)
    expected_rows, expected_columns = np.nonzero(mask)
    assert np.array_equal(rows, expected_rows) and np.array_equal(columns, expected_columns)
    assert np.array_equal(nonzero_positions(mask[:, ::-1])[1], np.nonzero(mask[:, ::-1])[1])  # a view too


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_enlarged_part_is_opencvs_bilinear_resize_within_a_level(data) -> None:  # type: ignore[no-untyped-def]
    """The warp that enlarges 8-bit pictures samples where ``cv2.resize`` does, edges included, and
    a part of the enlargement is that part of it, within a level."""
    import cv2

    height, width = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    channels = data.draw(st.sampled_from([(), (3,)]))
    pixels = data.draw(hnp.arrays(np.uint8, (height, width, *channels)))
    scaled_width = data.draw(st.integers(width, 4 * width + 7))
    scaled_height = data.draw(st.integers(height, 4 * height + 7))
    expected = cv2.resize(pixels, (scaled_width, scaled_height), interpolation=cv2.INTER_LINEAR).reshape(
        scaled_height, scaled_width, *channels)
    whole = enlarged_part(pixels, scaled_width, scaled_height)
    assert whole.shape == expected.shape and whole.dtype == np.uint8
    assert np.abs(whole.astype(int) - expected).max() <= 1
    left, top = data.draw(st.integers(0, scaled_width - 1)), data.draw(st.integers(0, scaled_height - 1))
    part_width = data.draw(st.integers(1, scaled_width - left))
    part_height = data.draw(st.integers(1, scaled_height - top))
    part = enlarged_part(pixels, scaled_width, scaled_height, left, top, part_width, part_height)
    # (the same positions; the warp's fixed-point steps can round a sample the other way)
    assert np.abs(part.astype(int) - whole[top : top + part_height, left : left + part_width]).max() <= 1
    if not channels:
        assert np.array_equal(resize_alpha(pixels, scaled_width, scaled_height), whole)
