"""The temporal smoother on small arrays: order, delay, bounded memory, flicker, scene cuts."""

from __future__ import annotations

import numpy as np
import pytest

from bgremove.temporal import CutDetector, TemporalSmoother, temporal_weights


def _gray(value: int, size: int = 16) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def _run(smoother: TemporalSmoother[int], probabilities: list[np.ndarray], pictures: list[np.ndarray] | None = None):
    pictures = pictures or [_gray(100)] * len(probabilities)
    out: list[tuple[int, np.ndarray]] = []
    held = []
    for index, (probability, rgb) in enumerate(zip(probabilities, pictures, strict=True)):
        out += smoother.push(index, probability, rgb)
        held.append(smoother.held)
    out += smoother.flush()
    return out, held


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_every_frame_comes_out_once_in_order_with_a_bounded_window(radius: int) -> None:
    probabilities = [np.full((4, 4), (index % 7) / 7, np.float32) for index in range(30)]
    out, held = _run(TemporalSmoother(radius), probabilities)
    assert [index for index, _ in out] == list(range(30))
    assert max(held) <= 2 * radius + 1


def test_output_waits_radius_frames_for_the_future() -> None:
    smoother: TemporalSmoother[int] = TemporalSmoother(2)
    ready = [len(smoother.push(index, np.zeros((2, 2), np.float32), _gray(0))) for index in range(5)]
    assert ready == [0, 0, 1, 1, 1]


def test_radius_zero_is_the_identity() -> None:
    probabilities = [np.random.default_rng(index).random((5, 5)).astype(np.float32) for index in range(6)]
    out, _ = _run(TemporalSmoother(0), probabilities)
    assert all(np.array_equal(a, b) for (_, a), b in zip(out, probabilities, strict=True))


def test_steady_matte_is_unchanged_and_values_stay_in_0_1() -> None:
    steady = np.linspace(0, 1, 25, dtype=np.float32).reshape(5, 5)
    out, _ = _run(TemporalSmoother(2), [steady] * 8)
    for _, smoothed in out:
        assert np.allclose(smoothed, steady, atol=1e-6)
        assert smoothed.min() >= 0 and smoothed.max() <= 1


def test_a_one_frame_dropout_is_mostly_filled_in_by_its_neighbours() -> None:
    probabilities = [np.full((3, 3), 0.95, np.float32) for _ in range(9)]
    probabilities[4] = np.full((3, 3), 0.45, np.float32)  # the model wavers for one frame
    out, _ = _run(TemporalSmoother(2), probabilities)
    assert out[4][1].min() > 0.8


def test_flicker_goes_down() -> None:
    rng = np.random.default_rng(1)
    base = np.zeros((20, 20), np.float32)
    base[5:15, 5:15] = 1
    probabilities = [np.clip(base + rng.normal(0, 0.2, base.shape), 0, 1).astype(np.float32) for _ in range(40)]

    def flicker(mattes: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(mattes, mattes[1:], strict=False)]))

    out, _ = _run(TemporalSmoother(2), probabilities)
    assert flicker([matte for _, matte in out]) < 0.6 * flicker(probabilities)


def test_nothing_is_averaged_across_a_scene_cut() -> None:
    pictures = [_gray(30)] * 5 + [_gray(220)] * 5
    probabilities = [np.zeros((2, 2), np.float32)] * 5 + [np.ones((2, 2), np.float32)] * 5
    out, _ = _run(TemporalSmoother(2), probabilities, pictures)
    assert all(matte.max() == 0 for _, matte in out[:5])
    assert all(matte.min() == 1 for _, matte in out[5:])


def test_frames_before_a_cut_come_out_when_the_cut_arrives() -> None:
    smoother: TemporalSmoother[int] = TemporalSmoother(3)
    for index in range(3):
        assert smoother.push(index, np.zeros((2, 2), np.float32), _gray(30)) == []
    released = smoother.push(3, np.ones((2, 2), np.float32), _gray(220))
    assert [index for index, _ in released] == [0, 1, 2]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([0, 2, 4, 6, 8, 10, 12], [False] * 7),  # a slow pan
        ([0, 1, 2, 200], [False, False, False, True]),  # a cut
        ([0, 8, 16, 24, 32, 40, 48, 56, 64], [False] * 9),  # steady fast motion, steps of 8
    ],
)
def test_cut_detector(changes: list[int], expected: list[bool]) -> None:
    detector = CutDetector()
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (32, 32, 3)).astype(np.int16)
    assert [detector.is_cut(np.clip(texture + value, 0, 255).astype(np.uint8)) for value in changes] == expected


def test_a_videos_luma_plane_gives_the_thumbnail_of_its_rgb(astronaut: np.ndarray) -> None:
    """Cut detection reads a frame's decoded luma where it has no RGB: the same gray, up to its range."""
    from bgremove.temporal import thumbnail
    from bgremove.yuv import SMPTE170M, rgb_to_yuv420

    rgb = np.ascontiguousarray(astronaut[:480, :510])
    luma = rgb_to_yuv420(rgb, SMPTE170M).y  # BT.601: OpenCV's gray weights
    difference = np.abs(thumbnail(luma) - thumbnail(rgb))
    assert thumbnail(luma).shape == (32, 32) and difference.mean() < 0.5 and difference.max() < 2.5
    detector = CutDetector()  # and it tells a cut as the RGB does
    assert [detector.is_cut(picture) for picture in (luma, luma, 255 - luma)] == [False, False, True]


def test_weights_are_a_symmetric_gaussian() -> None:
    weights = temporal_weights(2)
    assert weights.shape == (5,) and weights[2] == 1 and np.allclose(weights, weights[::-1])
    assert weights[0] < weights[1] < weights[2]


def test_negative_radius_is_refused() -> None:
    with pytest.raises(ValueError, match="radius"):
        TemporalSmoother(-1)


class _Probes:
    """Probes that count their runs."""

    def __init__(self, probabilities: list[np.ndarray]) -> None:
        self.probabilities = probabilities
        self.run: list[int] = []

    def __call__(self, index: int):  # type: ignore[no-untyped-def]
        def probe() -> np.ndarray:
            self.run.append(index)
            return self.probabilities[index]
        return probe


def _run_probes(smoother: TemporalSmoother[int], probes: _Probes, pictures: list[np.ndarray] | None = None):
    count = len(probes.probabilities)
    pictures = pictures or [_gray(100)] * count
    out: list[tuple[int, np.ndarray]] = []
    held = []
    for index in range(count):
        out += smoother.push(index, probes(index), pictures[index])
        held.append(smoother.held)
    return out + smoother.flush(), held


def _square(left: int, size: int = 24) -> np.ndarray:
    picture = np.zeros((size, size), np.float32)
    picture[6:18, left : left + 8] = 1.0
    return picture


def test_a_still_subject_skips_the_model_between_passes_and_gives_the_same_mattes() -> None:
    rng = np.random.default_rng(3)
    probabilities = [np.clip(_square(8) + rng.normal(0, 0.005, (24, 24)), 0, 1).astype(np.float32) for _ in range(20)]
    reference, _ = _run(TemporalSmoother(3), probabilities)
    probes = _Probes(probabilities)
    smoother: TemporalSmoother[int] = TemporalSmoother(3, stride=2)
    out, held = _run_probes(smoother, probes)
    assert [index for index, _ in out] == list(range(20))
    assert probes.run == list(range(0, 20, 2)) + [19] and smoother.passes == 11  # the last one at the end
    assert max(held) <= 2 * 3 + 2
    for (_, expected), (_, smoothed) in zip(reference, out, strict=True):
        assert np.abs(expected - smoothed).max() < 0.01


def test_a_moving_subject_runs_the_model_on_every_frame_and_gives_exactly_its_mattes() -> None:
    probabilities = [_square(left) for left in range(0, 16)]  # a pixel a frame: passes 2 apart disagree
    reference, _ = _run(TemporalSmoother(3), probabilities)
    probes = _Probes(probabilities)
    out, _ = _run_probes(TemporalSmoother(3, stride=2), probes)
    assert sorted(probes.run) == list(range(16))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(reference, out, strict=True))


def test_a_frame_between_passes_gets_its_own_pass_when_a_cut_follows_it() -> None:
    probabilities = [np.zeros((4, 4), np.float32)] * 4 + [np.ones((4, 4), np.float32)] * 4
    pictures = [_gray(30)] * 4 + [_gray(220)] * 4
    probes = _Probes(probabilities)
    out, _ = _run_probes(TemporalSmoother(2, stride=2), probes, pictures)
    assert 3 in probes.run  # the old scene's last frame: no pass after it in its scene
    assert all(matte.max() == 0 for _, matte in out[:4]) and all(matte.min() == 1 for _, matte in out[4:])


@pytest.mark.parametrize(("radius", "stride", "effective"), [(0, 3, 1), (1, 5, 2), (3, 2, 2), (3, 4, 4)])
def test_the_stride_is_at_most_one_more_than_the_radius(radius: int, stride: int, effective: int) -> None:
    assert TemporalSmoother(radius, stride=stride).stride == effective


def test_a_stride_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="stride"):
        TemporalSmoother(2, stride=0)
