"""The ONNX Runtime backend: tiny models built here for the plumbing, the real DeepLab export for quality."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from data_paths import data_folder, model_file
from onnx import TensorProto, helper, numpy_helper

from bgremove.config import SegmenterConfig
from bgremove.errors import ModelUnavailable, UsageProblem
from bgremove.segmenters.onnx import (
    AUTO_PREFERENCE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VOC_LABELS,
    OnnxSegmenter,
    choose_provider,
    class_axis,
    dynamic_input_size,
    softmax,
)
from bgremove.types import Frame

DEEPLAB_ONNX = "deeplab_v3_1_default_1.onnx"
DEEPLAB_TFLITE = "deeplab_v3.tflite"
PERSON, CAT = VOC_LABELS.index("person"), VOC_LABELS.index("cat")

# Scores of the 3-class test models, per pixel, from the normalised R, G, B (rows) to classes (columns):
# class 0 scores 0, class 1 scores 100 * R', class 2 scores 50 * G' - 50. Class 1 wins where R' > 0,
# and R' > 0 means R > 127.5 for TF-style inputs but R > 123.7 for ImageNet-normalised inputs, so a red
# value of 125 is class 0 for one layout and class 1 for the other: a wrong normalisation moves the argmax.
WEIGHTS_3 = np.array([[0, 100, 0], [0, 0, 50], [0, 0, 0]], dtype=np.float32)
BIAS_3 = np.array([0, 0, -50], dtype=np.float32)
# The second head of the two-output model: it would make every pixel class 2.
AUX_BIAS_3 = np.array([0, 0, 1000], dtype=np.float32)

SIDE = 32  # height and width of the fixed-size test models


def build_model(
    path: Path,
    *,
    layout: str,
    weights: npt.NDArray[np.float32] = WEIGHTS_3,
    bias: npt.NDArray[np.float32] = BIAS_3,
    dynamic: bool = False,
    output_layout: str | None = None,
    symbolic_output: bool = False,
    with_aux: bool = False,
) -> Path:
    """Write a one-layer ONNX model: per-pixel scores = normalised RGB @ weights + bias.

    ``layout`` is the input's ("NHWC" or "NCHW"); the output has the same layout unless
    ``output_layout`` says otherwise. ``dynamic`` makes height and width symbolic, ``symbolic_output``
    declares every output dimension symbolic (the class count too), ``with_aux`` adds a torchvision-like
    ``aux`` output before ``out``.
    """
    classes = weights.shape[1]
    height: int | str = "height" if dynamic else SIDE
    width: int | str = "width" if dynamic else SIDE
    output_layout = output_layout or layout
    initializers = [numpy_helper.from_array(bias, "bias")]
    nodes = []
    if layout == "NHWC":
        input_shape = [1, height, width, 3]
        initializers.append(numpy_helper.from_array(weights, "weights"))
        nodes += [helper.make_node("MatMul", ["image", "weights"], ["product"]),
                  helper.make_node("Add", ["product", "bias"], ["scores_nhwc"])]  # fmt: skip
        if output_layout == "NHWC":
            nodes.append(helper.make_node("Identity", ["scores_nhwc"], ["out"]))
        else:
            nodes.append(helper.make_node("Transpose", ["scores_nhwc"], ["out"], perm=[0, 3, 1, 2]))
    else:
        input_shape = [1, 3, height, width]
        kernel = np.ascontiguousarray(weights.T.reshape(classes, 3, 1, 1))
        initializers.append(numpy_helper.from_array(kernel, "kernel"))
        nodes.append(helper.make_node("Conv", ["image", "kernel", "bias"], ["out"]))
        if with_aux:
            initializers.append(numpy_helper.from_array(AUX_BIAS_3, "aux_bias"))
            nodes.append(helper.make_node("Conv", ["image", "kernel", "aux_bias"], ["aux"]))
    output_shape: list[int | str] = (
        [1, height, width, classes] if output_layout == "NHWC" else [1, classes, height, width]
    )
    if symbolic_output:
        output_shape = ["n", "c", "h", "w"]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)]
    if with_aux:
        outputs.insert(0, helper.make_tensor_value_info("aux", TensorProto.FLOAT, output_shape))
    graph = helper.make_graph(
        nodes,
        "scores",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def normalise(rgb: npt.NDArray[np.uint8], layout: str) -> npt.NDArray[np.float32]:
    """What each layout's model expects (H x W x 3), written out independently of the backend."""
    pixels = rgb.astype(np.float32)
    if layout == "NHWC":
        return pixels / 127.5 - 1
    return (pixels / 255 - IMAGENET_MEAN) / IMAGENET_STD


def expected_confidences(
    rgb: npt.NDArray[np.uint8],
    layout: str,
    weights: npt.NDArray[np.float32] = WEIGHTS_3,
    bias: npt.NDArray[np.float32] = BIAS_3,
) -> npt.NDArray[np.float32]:
    """C x H x W probabilities the test model should give for an image already at its input size."""
    scores = normalise(rgb, layout) @ weights + bias
    exponentials = np.exp(scores.astype(np.float64) - scores.max(axis=2, keepdims=True))
    return (exponentials / exponentials.sum(axis=2, keepdims=True)).transpose(2, 0, 1).astype(np.float32)


def halves(height: int, width: int, left_red: int, right_red: int) -> npt.NDArray[np.uint8]:
    """An image whose left half has one red value and right half another; green and blue are 0."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, : width // 2, 0] = left_red
    rgb[:, width // 2 :, 0] = right_red
    return rgb


def random_image(height: int, width: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def open_segmenter(path: Path, **config: object) -> OnnxSegmenter:
    return OnnxSegmenter(path, None, SegmenterConfig(model=str(path), **config))  # type: ignore[arg-type]


def assert_probabilities(confidences: npt.NDArray[np.float32], shape: tuple[int, ...]) -> None:
    assert confidences.shape == shape
    assert confidences.dtype == np.float32
    assert confidences.flags.c_contiguous
    assert np.all(confidences >= 0) and np.all(confidences <= 1)
    np.testing.assert_allclose(confidences.sum(axis=0), 1.0, atol=1e-5)


@pytest.fixture
def model_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(**options: object) -> Path:
        return build_model(tmp_path / f"model_{next(counter)}.onnx", **options)  # type: ignore[arg-type]

    return make


# ---- layouts, normalisation, resizing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "output_layout", "left_class"),
    [
        ("NHWC", "NHWC", 0),  # TF-style: 125 / 127.5 - 1 < 0
        ("NCHW", "NCHW", 1),  # ImageNet: (125 / 255 - 0.485) / 0.229 > 0
        ("NHWC", "NCHW", 0),  # a TF-style input with a channels-first output
    ],
)
def test_fixed_size_model_normalises_for_its_layout(
    model_factory: Callable[..., Path], layout: str, output_layout: str, left_class: int
) -> None:
    path = model_factory(layout=layout, output_layout=output_layout)
    with open_segmenter(path, device="cpu") as segmenter:
        assert segmenter.labels == ("class_0", "class_1", "class_2")
        rgb = halves(SIDE, SIDE, left_red=125, right_red=200)
        segmentation = segmenter.segment(Frame(rgb))
        assert segmentation.labels == segmenter.labels
        assert_probabilities(segmentation.confidences, (3, SIDE, SIDE))
        category = segmentation.confidences.argmax(axis=0)
        assert np.all(category[:, : SIDE // 2] == left_class)
        assert np.all(category[:, SIDE // 2 :] == 1)

        rgb = random_image(SIDE, SIDE)
        np.testing.assert_allclose(
            segmenter.segment(Frame(rgb)).confidences, expected_confidences(rgb, layout), atol=1e-5
        )


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_frame_is_resized_to_the_model_input(model_factory: Callable[..., Path], layout: str) -> None:
    """Shrinking averages (INTER_AREA), enlarging interpolates (INTER_LINEAR).

    Columns of red 0, 255, 0 shrunk 3x average to 85 (class 0); INTER_LINEAR would pick 255 (class 1).
    """
    path = model_factory(layout=layout)
    with open_segmenter(path) as segmenter:
        stripes = np.zeros((3 * SIDE, 3 * SIDE, 3), dtype=np.uint8)
        stripes[:, 1::3, 0] = 255
        confidences = segmenter.segment(Frame(stripes)).confidences
        shrunk = cv2.resize(stripes, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(confidences, expected_confidences(shrunk, layout), atol=1e-5)
        assert np.all(confidences.argmax(axis=0) == 0)

        small = random_image(SIDE // 2, SIDE // 2, seed=1)
        enlarged = cv2.resize(small, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(
            segmenter.segment(Frame(small)).confidences, expected_confidences(enlarged, layout), atol=1e-5
        )


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_preview_at_the_model_size_stands_in_for_the_frame(model_factory: Callable[..., Path],
                                                               dynamic: bool) -> None:
    """A video frame composited on its planes carries only a preview of ``model_size``: the model is fed
    what the full frame would have given, and a dynamic model's size still follows the frame's."""
    from bgremove.segmenters import shrink_for_model
    from bgremove.types import placeholder_pixels

    path = model_factory(layout="NCHW", dynamic=dynamic)
    with open_segmenter(path) as segmenter:
        rgb = halves(600, 400, left_red=125, right_red=200)
        size = segmenter.model_size(400, 600)
        assert size == ((344, 512) if dynamic else (SIDE, SIDE))
        assert size is not None
        frame = Frame(placeholder_pixels(rgb.shape), preview=shrink_for_model(rgb, *size))
        np.testing.assert_array_equal(segmenter.segment(frame).confidences, segmenter.segment(Frame(rgb)).confidences)


def test_dynamic_size_model_keeps_the_frame_aspect(model_factory: Callable[..., Path]) -> None:
    path = model_factory(layout="NCHW", dynamic=True)
    with open_segmenter(path) as segmenter:
        rgb = halves(600, 400, left_red=125, right_red=200)
        confidences = segmenter.segment(Frame(rgb)).confidences
        assert_probabilities(confidences, (3, 512, 344))  # 400 / 600 * 512 = 341.3 -> 344
        category = confidences.argmax(axis=0)
        assert np.all(category[:, :160] == 1) and np.all(category[:, 184:] == 1)
        # a uniform frame gives the same probabilities as at any size
        uniform = np.full((90, 160, 3), (125, 30, 200), dtype=np.uint8)
        confidences = segmenter.segment(Frame(uniform)).confidences
        assert confidences.shape == (3, 288, 512)
        one_pixel = expected_confidences(uniform[:1, :1], "NCHW")
        np.testing.assert_allclose(confidences, np.broadcast_to(one_pixel, confidences.shape), atol=1e-5)


@pytest.mark.parametrize(
    ("frame", "fixed", "size"),
    [
        ((600, 400), (None, None), (512, 344)),
        ((1000, 1000), (None, None), (512, 512)),
        ((100, 200), (None, None), (256, 512)),
        ((2, 4000), (None, None), (8, 512)),  # never below one multiple of 8
        ((100, 200), (64, None), (64, 128)),
        ((100, 200), (None, 50), (24, 50)),
        ((100, 200), (257, 257), (257, 257)),
    ],
)
def test_dynamic_input_size(
    frame: tuple[int, int], fixed: tuple[int | None, int | None], size: tuple[int, int]
) -> None:
    assert dynamic_input_size(*frame, *fixed) == size


@pytest.mark.parametrize(
    ("shape", "channels_last", "axis"),
    [
        ((1, 257, 257, 21), True, 3),
        ((1, 21, 257, 257), True, 1),  # square spatial pair wins over the input layout
        ((1, 257, 257, 21), False, 3),
        ((1, 21, None, None), True, 1),  # the only fixed candidate
        ((1, None, None, 21), False, 3),
        ((1, 21, 64, 48), False, 1),  # nothing to go by: the input layout
        ((1, 64, 48, 21), True, 3),
    ],
)
def test_class_axis(shape: tuple[int | None, ...], channels_last: bool, axis: int) -> None:
    assert class_axis(shape, channels_last) == axis


def test_output_named_out_is_used_and_class_count_found_by_running(model_factory: Callable[..., Path]) -> None:
    path = model_factory(layout="NCHW", dynamic=True, with_aux=True, symbolic_output=True)
    with open_segmenter(path) as segmenter:
        assert len(segmenter.labels) == 3
        rgb = halves(SIDE, SIDE, left_red=125, right_red=200)
        category = segmenter.segment(Frame(rgb)).confidences.argmax(axis=0)
        assert not np.any(category == 2)  # what the aux head would say everywhere


def test_softmax_is_stable_for_large_scores() -> None:
    scores = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 0.0]], dtype=np.float32)
    probabilities = softmax(scores, axis=1)
    assert probabilities.dtype == np.float32
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities, [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-6)


# ---- labels --------------------------------------------------------------------------------------------


def test_21_classes_get_the_voc_labels(model_factory: Callable[..., Path]) -> None:
    weights = np.random.default_rng(2).normal(size=(3, 21)).astype(np.float32)
    bias = np.random.default_rng(3).normal(size=21).astype(np.float32)
    path = model_factory(layout="NHWC", weights=weights, bias=bias)
    with open_segmenter(path) as segmenter:
        assert segmenter.labels == VOC_LABELS
        assert segmenter.labels[15] == "person" and "dining table" in segmenter.labels
        rgb = random_image(SIDE, SIDE, seed=4)
        confidences = segmenter.segment(Frame(rgb)).confidences
        assert_probabilities(confidences, (21, SIDE, SIDE))
        np.testing.assert_allclose(confidences, expected_confidences(rgb, "NHWC", weights, bias), atol=1e-5)


def test_labels_file_names_the_classes(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("sky\n\n  red thing \nblue-ish\n\n", encoding="utf-8")
    with open_segmenter(model_factory(layout="NHWC"), labels_file=labels_file) as segmenter:
        assert segmenter.labels == ("sky", "red thing", "blue-ish")
        assert segmenter.segment(Frame(random_image(SIDE, SIDE))).labels == segmenter.labels


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\nb\n", "labels file {labels} has 2 labels but model {model} outputs 3 classes"),
        ("\n".join(VOC_LABELS), "labels file {labels} has 21 labels but model {model} outputs 3 classes"),
        ("\n  \n", "labels file {labels} has no labels"),
        ("a\nb\na\n", "labels file {labels} names 'a' twice"),
        (None, "labels file {labels} cannot be read: No such file or directory"),
        (b"\xff\xfe\x00bad", "labels file {labels} cannot be read: 'utf-8' codec can't decode"),
    ],
)
def test_bad_labels_file(
    model_factory: Callable[..., Path], tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    model = model_factory(layout="NHWC")
    labels = tmp_path / "labels.txt"
    if isinstance(content, str):
        labels.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        labels.write_bytes(content)
    with pytest.raises(UsageProblem) as caught:
        open_segmenter(model, labels_file=labels)
    assert str(caught.value).startswith(message.format(labels=labels, model=model))


# ---- devices and threads ---------------------------------------------------------------------------------

CUDA_AVAILABLE = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_and_auto_devices(model_factory: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    path = model_factory(layout="NHWC")
    with open_segmenter(path, device="cpu", threads=1) as segmenter:
        assert segmenter.provider == "CPUExecutionProvider"
    best = next(name for name in AUTO_PREFERENCE if name in ort.get_available_providers())
    with caplog.at_level(logging.INFO, logger="bgremove.segmenters.onnx"), \
            open_segmenter(path, device="auto") as segmenter:
        assert segmenter.provider == best
    assert best in caplog.text


@pytest.mark.skipif(CUDA_AVAILABLE, reason="CUDA is available here: asking for it succeeds")
def test_unavailable_device_is_refused(model_factory: Callable[..., Path]) -> None:
    with pytest.raises(UsageProblem) as caught:
        open_segmenter(model_factory(layout="NHWC"), device="cuda")
    message = str(caught.value)
    assert message.startswith("device 'cuda' is not available: this onnxruntime has no CUDAExecutionProvider")
    assert "(available: " in message and "cpu" in message


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("quantum", "unknown device 'quantum' (known: auto, cpu, cuda, "),
        ("FooExecutionProvider", "device 'FooExecutionProvider' is not available"),
    ],
)
def test_unknown_device_is_refused(model_factory: Callable[..., Path], device: str, message: str) -> None:
    with pytest.raises(UsageProblem, match=f"^{message}".replace("(", r"\(")):
        open_segmenter(model_factory(layout="NHWC"), device=device)


@pytest.mark.skipif(CUDA_AVAILABLE, reason="CUDA is available here: no fallback to provoke")
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_fallback_to_cpu_is_an_error_only_for_a_named_device(
    model_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ONNX Runtime quietly runs on the CPU when a GPU provider cannot start: pretend CUDA is there."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    path = model_factory(layout="NHWC")
    with pytest.raises(UsageProblem, match="^device 'cuda' could not be used: onnxruntime fell back from "
                       "CUDAExecutionProvider to CPUExecutionProvider"):  # fmt: skip
        open_segmenter(path, device="cuda")
    with caplog.at_level(logging.WARNING, logger="bgremove.segmenters.onnx"), \
            open_segmenter(path, device="auto") as segmenter:
        assert segmenter.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider could not be used" in caplog.text


@pytest.mark.parametrize(
    ("device", "available", "provider"),
    [
        ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], "CUDAExecutionProvider"),
        ("auto", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
         "CUDAExecutionProvider"),
        ("auto", ["AzureExecutionProvider", "CPUExecutionProvider"], "CPUExecutionProvider"),
        ("auto", ["CoreMLExecutionProvider", "CPUExecutionProvider"], "CoreMLExecutionProvider"),
        ("TensorRT", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
         "TensorrtExecutionProvider"),
        ("dml", ["DmlExecutionProvider", "CPUExecutionProvider"], "DmlExecutionProvider"),
        ("rocm", ["ROCMExecutionProvider", "CPUExecutionProvider"], "ROCMExecutionProvider"),
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], "CPUExecutionProvider"),
    ],
)  # fmt: skip
def test_choose_provider(device: str, available: list[str], provider: str) -> None:
    assert choose_provider(device, available) == provider


def test_negative_threads_are_refused(model_factory: Callable[..., Path]) -> None:
    with pytest.raises(UsageProblem, match="threads must be 0"):
        open_segmenter(model_factory(layout="NHWC"), threads=-2)


# ---- files that are not usable models ----------------------------------------------------------------


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.onnx"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is a JPEG, not a model\n" * 10)
    with pytest.raises(ModelUnavailable) as caught:
        open_segmenter(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot load ONNX model: ")
    assert "\n" not in message and "ONNXRuntimeError" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(ModelUnavailable, match="cannot load ONNX model: no such file"):
        open_segmenter(path)


def _graph_model(
    path: Path, input_shape: list[int], output_shape: list[int], nodes: list[onnx.NodeProto]
) -> Path:
    graph = helper.make_graph(
        nodes,
        "odd",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


@pytest.mark.parametrize(
    ("input_shape", "output_shape", "nodes", "message"),
    [
        ([1, 1, 32, 32], [1, 1, 32, 32], [helper.make_node("Identity", ["image"], ["out"])],
         "is not an image of 3 channels"),
        ([1, 3, 32, 32], [1, 3072], [helper.make_node("Flatten", ["image"], ["out"])],
         "no output holds per-class scores"),
        ([1, 3, 32, 32], [1, 1, 32, 32],
         [helper.make_node("ReduceMean", ["image"], ["out"], axes=[1], keepdims=1)],
         "outputs 1 channel"),
    ],
)  # fmt: skip
def test_models_this_backend_cannot_use(
    tmp_path: Path, input_shape: list[int], output_shape: list[int], nodes: list[onnx.NodeProto], message: str
) -> None:
    path = _graph_model(tmp_path / "odd.onnx", input_shape, output_shape, nodes)
    with pytest.raises(UsageProblem, match=message):
        open_segmenter(path)


# ---- the Segmenter contract --------------------------------------------------------------------------


def test_registry_opens_onnx_files(model_factory: Callable[..., Path]) -> None:
    from bgremove.segmenters import Segmenter, create_segmenter

    path = model_factory(layout="NHWC")
    with create_segmenter(SegmenterConfig(model=str(path)), video=True) as segmenter:
        assert isinstance(segmenter, OnnxSegmenter)
        assert isinstance(segmenter, Segmenter)
        for index in range(3):
            frame = Frame(random_image(SIDE, SIDE, seed=index), index=index, timestamp=index / 25)
            assert segmenter.segment(frame).confidences.shape == (3, SIDE, SIDE)


def test_closed_segmenter_refuses_frames(model_factory: Callable[..., Path]) -> None:
    with open_segmenter(model_factory(layout="NHWC")) as segmenter:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        segmenter.segment(Frame(random_image(SIDE, SIDE)))
    segmenter.close()


# ---- the real DeepLabV3 export ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deeplab() -> Iterator[OnnxSegmenter]:
    with open_segmenter(model_file(DEEPLAB_ONNX)) as segmenter:
        yield segmenter


def frame_confidences(segmenter: OnnxSegmenter, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """C x H x W confidences upscaled from the model's resolution to the image's."""
    confidences = segmenter.segment(Frame(np.ascontiguousarray(rgb))).confidences
    size = (rgb.shape[1], rgb.shape[0])
    return cv2.resize(confidences.transpose(1, 2, 0), size, interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)


def iou(first: npt.NDArray[np.bool_], second: npt.NDArray[np.bool_]) -> float:
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 1.0


def test_deeplab_finds_the_astronaut(deeplab: OnnxSegmenter, astronaut: npt.NDArray[np.uint8]) -> None:
    rgb = astronaut
    confidences = deeplab.segment(Frame(rgb)).confidences
    assert_probabilities(confidences, (21, 257, 257))
    person = frame_confidences(deeplab, rgb)[PERSON] > 0.5
    print(f"\nastronaut: person {person.mean():.1%} of pixels")
    assert person.mean() >= 0.40

    frame = Frame(np.ascontiguousarray(cv2.resize(rgb, (257, 257), interpolation=cv2.INTER_AREA)))
    deeplab.segment(frame)
    runs = 10
    start = time.perf_counter()
    for _ in range(runs):
        deeplab.segment(frame)
    milliseconds = (time.perf_counter() - start) / runs * 1000
    print(f"deeplab onnx on {deeplab.provider}: {milliseconds:.1f} ms per 257x257 frame")


def test_deeplab_finds_the_cat_and_no_person(deeplab: OnnxSegmenter, chelsea: npt.NDArray[np.uint8]) -> None:
    confidences = frame_confidences(deeplab, chelsea)
    cat, person = (confidences[CAT] > 0.5).mean(), (confidences[PERSON] > 0.5).mean()
    print(f"\nchelsea: cat {cat:.1%}, person {person:.1%} of pixels")
    assert cat > 0.5
    assert person < 0.02


def test_deeplab_onnx_agrees_with_the_tflite_model(
    deeplab: OnnxSegmenter, astronaut: npt.NDArray[np.uint8]
) -> None:
    from bgremove.segmenters import create_segmenter

    if importlib.util.find_spec("bgremove.segmenters.mediapipe_tasks") is None:
        pytest.skip("the MediaPipe backend bgremove/segmenters/mediapipe_tasks.py is absent")
    tflite = model_file(DEEPLAB_TFLITE)
    rgb = astronaut
    with create_segmenter(SegmenterConfig(model=str(tflite))) as reference:
        assert reference.labels == deeplab.labels
        tflite_person = frame_confidences(reference, rgb)[PERSON] > 0.5  # type: ignore[arg-type]
    onnx_person = frame_confidences(deeplab, rgb)[PERSON] > 0.5
    agreement = iou(onnx_person, tflite_person)
    print(f"\nastronaut person mask, IoU onnx vs tflite: {agreement:.3f}")
    assert agreement >= 0.9


def test_deeplab_on_pascal_voc_samples(deeplab: OnnxSegmenter) -> None:
    from PIL import Image

    folder = data_folder("voc_samples")
    images = sorted((folder / "images").iterdir())
    assert images, f"no images in {folder / 'images'}"
    intersections: dict[int, int] = {}
    unions: dict[int, int] = {}
    rows = []
    for image_path in images:
        rgb = np.array(Image.open(image_path).convert("RGB"))
        truth = np.array(Image.open(folder / "labels" / f"{image_path.stem}.png"))
        assert truth.shape == rgb.shape[:2]
        category = frame_confidences(deeplab, rgb).argmax(axis=0)
        valid = truth != 255
        present = [int(value) for value in np.unique(truth[valid])]
        for value in present:
            predicted, expected = (category == value) & valid, (truth == value) & valid
            intersections[value] = intersections.get(value, 0) + int((predicted & expected).sum())
            unions[value] = unions.get(value, 0) + int((predicted | expected).sum())
            rows.append(f"  {image_path.stem:24} {VOC_LABELS[value]:14} {iou(predicted, expected):.3f}")
        objects = [value for value in present if value != 0]
        main_truth = max(objects, key=lambda value: int((truth == value).sum()))
        predicted_counts = np.bincount(category.ravel(), minlength=21)
        main_predicted = int(np.argmax(predicted_counts[1:])) + 1
        assert main_predicted == main_truth, (
            f"{image_path.name}: most pixels are {VOC_LABELS[main_truth]}, "
            f"the model says {VOC_LABELS[main_predicted]}"
        )
    per_class = {value: intersections[value] / unions[value] for value in sorted(unions)}
    mean_iou = float(np.mean(list(per_class.values())))
    print("\nVOC samples, IoU per image and class:\n" + "\n".join(rows))
    print("IoU per class over all samples:")
    for value, score in per_class.items():
        print(f"  {VOC_LABELS[value]:14} {score:.3f}")
    print(f"mean IoU over {len(per_class)} classes: {mean_iou:.3f}")
    assert mean_iou >= 0.5  # measured 0.557: small bottle, car and sofa are missed at 257x257
