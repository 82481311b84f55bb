"""Segmentation models run by ONNX Runtime, on the CPU or on a GPU.

The model file says how it wants to be fed, so nothing about a particular export is hard-coded here:

* **Input layout** is read from the model: the image input is the 4-D input with 3 channels, either in
  position 1 (NCHW) or last (NHWC). Its height and width may be fixed numbers or dynamic (symbolic);
  dynamic ones are chosen per frame, see :func:`dynamic_input_size`.
* **Normalisation** follows the layout, because the two families of exports differ in both at once (see
  the model README): NHWC inputs come from TensorFlow (TF Hub / tf2onnx DeepLab) and take RGB scaled to
  [-1, 1] as ``x / 127.5 - 1``; NCHW inputs come from PyTorch (torchvision) and take
  ``(x / 255 - mean) / std`` with the ImageNet mean and std.
* **Output**: the output named ``out`` (torchvision's main head, next to ``aux``), else the first 4-D
  output. Its class axis is the one of positions 1 and 3 that is not spatial (see :func:`class_axis`).
  Raw scores become probabilities with a softmax over the classes, always: the models we meet output
  logits, and one rule is easier to reason about than a guess per model.

Labels: a 21-class model gets the PASCAL VOC names (``VOC_LABELS``); a labels file
(``SegmenterConfig.labels_file``) overrides them; any other class count without a labels file gets
generic names ``class_0``, ``class_1``... so the model still runs and classes can be kept by index name.

Devices: ``SegmenterConfig.device`` is ``auto``, ``cpu``, ``cuda`` or another ONNX Runtime provider's
short name (``DEVICE_PROVIDERS``). A device named explicitly is used or refused with
:class:`~bgremove.errors.UsageProblem`, never silently replaced by the CPU; ``auto`` takes the best
available provider (``AUTO_PREFERENCE``) and accepts the CPU when ONNX Runtime falls back to it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from ..errors import ModelUnavailable, UsageProblem
from ..types import Frame, Segmentation
from . import shrink_for_model

if TYPE_CHECKING:
    from ..config import SegmenterConfig
    from ..models import ModelSpec

logger = logging.getLogger(__name__)

# PASCAL VOC classes, spelled as the labels in MediaPipe's deeplab_v3.tflite metadata, so that
# `--keep "dining table"` means the same with either DeepLab backend.
VOC_LABELS: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv",
)  # fmt: skip

# Long side, in pixels, of the image fed to a model with dynamic height/width. DeepLab was trained and
# evaluated on 513x513 crops; 512 is that size rounded to SIZE_MULTIPLE.
DYNAMIC_LONG_SIDE = 512
# Dynamic sizes are multiples of this: the encoders of segmentation networks downsample by 8 or more,
# and sizes that divide evenly keep the decoder's upsampled output aligned with the input.
SIZE_MULTIPLE = 8

IMAGENET_MEAN: npt.NDArray[np.float32] = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD: npt.NDArray[np.float32] = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# device name (as the user types it) -> ONNX Runtime execution provider
DEVICE_PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}

# What `auto` picks, best first. TensorRT is left out: it compiles an engine for minutes on first use
# and per input size, which is a surprise for a command-line tool; ask for it with `--device tensorrt`.
AUTO_PREFERENCE: tuple[str, ...] = (
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)

_CPU = "CPUExecutionProvider"
_ORT_ERROR_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .*? failed:)?")

Dim = int | None  # a tensor dimension; None where the model leaves it dynamic


def softmax(scores: npt.NDArray[np.floating[Any]], axis: int) -> npt.NDArray[np.float32]:
    """Probabilities from raw scores along ``axis``, in float32.

    The maximum is subtracted first so that large logits cannot overflow ``exp``.
    """
    scores32 = np.asarray(scores, dtype=np.float32)
    shifted = scores32 - scores32.max(axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    probabilities: npt.NDArray[np.float32] = exponentials / exponentials.sum(axis=axis, keepdims=True)
    return probabilities


def dynamic_input_size(
    frame_height: int, frame_width: int, fixed_height: Dim = None, fixed_width: Dim = None
) -> tuple[int, int]:
    """The (height, width) to feed a model whose input height and/or width is dynamic.

    The frame's aspect ratio is kept. With both sides dynamic the long side becomes ``DYNAMIC_LONG_SIDE``
    (small frames are enlarged too: the networks are trained at about that scale); with one side fixed
    the other follows from it. Dynamic sides are rounded to a multiple of ``SIZE_MULTIPLE``.
    """

    def rounded(size: float) -> int:
        return max(SIZE_MULTIPLE, int(round(size / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    if fixed_height is not None and fixed_width is not None:
        return fixed_height, fixed_width
    if fixed_height is not None:
        return fixed_height, rounded(fixed_height * frame_width / frame_height)
    if fixed_width is not None:
        return rounded(fixed_width * frame_height / frame_width), fixed_width
    scale = DYNAMIC_LONG_SIDE / max(frame_height, frame_width)
    return rounded(frame_height * scale), rounded(frame_width * scale)


def class_axis(shape: Sequence[Dim], channels_last: bool) -> int:
    """Which axis of a 4-D output ``[1, a, b, c]`` holds the classes: 1 (NCHW) or 3 (NHWC).

    In order: the only one of axes 1 and 3 with a fixed size (the spatial ones are dynamic); the one of
    them that differs from axis 2 while the other equals it (the spatial pair of a square output, e.g.
    ``[1, 257, 257, 21]``); otherwise the layout of the input.
    """
    first, middle, last = shape[1], shape[2], shape[3]
    if first is not None and last is None:
        return 1
    if last is not None and first is None:
        return 3
    if middle is not None and first is not None and last is not None and first != last:
        if first == middle:
            return 3
        if last == middle:
            return 1
    return 3 if channels_last else 1


def read_labels_file(path: Path) -> tuple[str, ...]:
    """Labels from a text file, one per line; blank lines are ignored, surrounding spaces stripped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UsageProblem(f"labels file {path} cannot be read: {reason}") from error
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise UsageProblem(f"labels file {path} has no labels")
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise UsageProblem(f"labels file {path} names '{label}' twice")
        seen.add(label)
    return labels


def _short_name(provider: str) -> str:
    for device, known in DEVICE_PROVIDERS.items():
        if known == provider:
            return device
    return provider


def choose_provider(device: str, available: Sequence[str]) -> str:
    """The execution provider for a device name, checked against the providers this ORT build has.

    ``device`` is ``auto``, a short name from ``DEVICE_PROVIDERS`` (any case) or a full provider name.
    Raises UsageProblem for an unknown name or a provider that is not available: a named device is
    never silently replaced.
    """
    if device.lower() == "auto":
        for provider in AUTO_PREFERENCE:
            if provider in available:
                return provider
        return _CPU
    provider = DEVICE_PROVIDERS.get(device.lower())
    if provider is None and device.endswith("ExecutionProvider"):
        provider = device
    if provider is None:
        known = ", ".join(["auto", *DEVICE_PROVIDERS])
        raise UsageProblem(f"unknown device '{device}' (known: {known})")
    if provider not in available:
        offered = ", ".join(_short_name(name) for name in available)
        raise UsageProblem(
            f"device '{device}' is not available: this onnxruntime has no {provider} (available: {offered})"
        )
    return provider


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return _ORT_ERROR_PREFIX.sub("", text) or type(error).__name__


def _dim(value: object) -> Dim:
    """A dimension as ONNX Runtime reports it: an int, or a str/None for a dynamic one."""
    return value if isinstance(value, int) and value > 0 else None


class OnnxSegmenter:
    """A semantic segmentation model in an ONNX file, run by ONNX Runtime.

    ``labels`` names the classes in the order of the returned confidences; ``provider`` is the ONNX
    Runtime execution provider the session really runs on. ``video`` is accepted for the Segmenter
    contract and changes nothing: the model sees every frame on its own.
    """

    labels: tuple[str, ...]
    provider: str

    def __init__(
        self,
        model_path: Path,
        spec: ModelSpec | None,
        config: SegmenterConfig,
        *,
        video: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self.spec = spec
        self.video = video
        self._session: ort.InferenceSession | None = None
        if not self.model_path.is_file():
            raise ModelUnavailable(f"{self.model_path}: cannot load ONNX model: no such file")

        provider = choose_provider(config.device, ort.get_available_providers())
        session = self._open_session(provider, config)
        self.provider = session.get_providers()[0]
        if self.provider != provider:
            if config.device.lower() != "auto":
                raise UsageProblem(
                    f"device '{config.device}' could not be used: onnxruntime fell back from {provider} "
                    f"to {self.provider} (are the {_short_name(provider)} libraries installed?)"
                )
            logger.warning("%s: %s could not be used, running on %s", self.model_path, provider, self.provider)
        self._session = session

        self._input_name, self._channels_last, self._input_height, self._input_width, self._input_type = (
            self._find_image_input(session)
        )
        self._output_name, declared_shape = self._find_output(session)
        self._class_axis = class_axis(declared_shape, self._channels_last)
        classes = declared_shape[self._class_axis]
        if classes is None:
            # Nothing in the model's metadata says how many classes: run it once to find out.
            square = self.input_size(DYNAMIC_LONG_SIDE, DYNAMIC_LONG_SIDE)
            probe = np.zeros(self._feed_shape(*square), dtype=self._input_type)
            probed_shape = self._run(probe).shape
            self._class_axis = class_axis(probed_shape, self._channels_last)
            classes = int(probed_shape[self._class_axis])
        if classes < 2:
            raise UsageProblem(
                f"{self.model_path}: the model outputs {classes} channel; the ONNX backend needs per-class "
                "scores for 2 or more classes"
            )
        self.labels = self._labels_for(classes, config.labels_file)
        logger.info(
            "%s: %s input %s, %d classes, running on %s",
            self.model_path.name,
            "NHWC" if self._channels_last else "NCHW",
            f"{self._input_height or '?'}x{self._input_width or '?'}",
            classes,
            self.provider,
        )

    def _open_session(self, provider: str, config: SegmenterConfig) -> ort.InferenceSession:
        """An inference session on ``provider``; ModelUnavailable if the file is not a usable ONNX model."""
        options = ort.SessionOptions()
        if config.threads is not None:
            if config.threads < 0:
                raise UsageProblem(f"threads must be 0 (automatic) or more, not {config.threads}")
            # The CLI divides the cores between parallel jobs; 0 lets ONNX Runtime use them all.
            options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings are for developers, not users
        providers = [provider] if provider == _CPU else [provider, _CPU]
        try:
            # enable_fallback=0: ORT's own fallback prints to stdout and hides which provider failed.
            return ort.InferenceSession(str(self.model_path), options, providers=providers, enable_fallback=0)
        except Exception as error:  # ORT's pybind errors share no base class beyond Exception
            if provider == _CPU:
                raise ModelUnavailable(
                    f"{self.model_path}: cannot load ONNX model: {_one_line(error)}"
                ) from error
            provider_error = error
        # The accelerator may be what failed, not the file: tell the two apart with a CPU session.
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=[_CPU], enable_fallback=0)
        except Exception as error:
            raise ModelUnavailable(f"{self.model_path}: cannot load ONNX model: {_one_line(error)}") from error
        if config.device.lower() != "auto":
            raise UsageProblem(
                f"device '{config.device}' could not be used for {self.model_path}: {_one_line(provider_error)}"
            ) from provider_error
        return session

    def _find_image_input(self, session: ort.InferenceSession) -> tuple[str, bool, Dim, Dim, type[np.floating[Any]]]:
        """(name, channels_last, height, width, dtype) of the model's image input."""
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(f"{item.name} {item.shape}" for item in inputs)
            raise UsageProblem(f"{self.model_path}: expected one image input, the model has {len(inputs)}: {names}")
        image = inputs[0]
        shape = list(image.shape)
        if len(shape) != 4 or not (shape[1] == 3 or shape[3] == 3):
            raise UsageProblem(
                f"{self.model_path}: input {image.name} {shape} is not an image of 3 channels (NCHW or NHWC)"
            )
        dtypes: dict[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
        if image.type not in dtypes:
            raise UsageProblem(
                f"{self.model_path}: input {image.name} is {image.type}; only float inputs are supported"
            )
        channels_last = shape[3] == 3 and shape[1] != 3
        height, width = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])
        return image.name, channels_last, _dim(height), _dim(width), dtypes[image.type]

    def _find_output(self, session: ort.InferenceSession) -> tuple[str, list[Dim]]:
        """(name, declared shape) of the per-class score output: ``out`` if there is one, else the first 4-D."""
        outputs = session.get_outputs()
        candidates = [item for item in outputs if len(item.shape) == 4]
        if not candidates:
            shapes = ", ".join(f"{item.name} {item.shape}" for item in outputs)
            raise UsageProblem(
                f"{self.model_path}: no output holds per-class scores [1, C, h, w] or [1, h, w, C]: {shapes}"
            )
        chosen = next((item for item in candidates if item.name == "out"), candidates[0])
        return chosen.name, [_dim(value) for value in chosen.shape]

    def _labels_for(self, classes: int, labels_file: Path | None) -> tuple[str, ...]:
        if labels_file is not None:
            labels = read_labels_file(Path(labels_file))
            if len(labels) != classes:
                raise UsageProblem(
                    f"labels file {labels_file} has {len(labels)} labels but model {self.model_path} "
                    f"outputs {classes} classes"
                )
            return labels
        if classes == len(VOC_LABELS):
            return VOC_LABELS
        return tuple(f"class_{index}" for index in range(classes))

    def _feed_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        return (1, height, width, 3) if self._channels_last else (1, 3, height, width)

    def _run(self, batch: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        if self._session is None:
            raise RuntimeError("the segmenter is closed")
        (scores,) = self._session.run([self._output_name], {self._input_name: batch})
        return np.asarray(scores, dtype=np.float32)

    def input_size(self, frame_height: int, frame_width: int) -> tuple[int, int]:
        """The (height, width) the model is fed for a frame of this size."""
        return dynamic_input_size(frame_height, frame_width, self._input_height, self._input_width)

    def model_size(self, width: int, height: int) -> tuple[int, int] | None:
        model_height, model_width = self.input_size(height, width)
        return model_width, model_height

    def _preprocess(self, frame: Frame) -> npt.NDArray[np.floating[Any]]:
        """The frame resized to the model input and normalised for its layout, as a batch of one."""
        height, width = self.input_size(frame.height, frame.width)
        pixels = shrink_for_model(frame.model_rgb, width, height).astype(np.float32)
        if self._channels_last:
            batch = (pixels / 127.5 - 1.0)[np.newaxis]
        else:
            batch = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[np.newaxis]
        return np.ascontiguousarray(batch, dtype=self._input_type)

    def segment(self, frame: Frame) -> Segmentation:
        """Per-class probabilities (C x h x w float32, summing to 1 per pixel) at the model's output size."""
        scores = self._run(self._preprocess(frame))[0]
        # the batch axis is gone: the class axis is now 0 (NCHW) or 2 (NHWC)
        if self._class_axis == 3:
            scores = scores.transpose(2, 0, 1)
        if scores.shape[0] != len(self.labels):
            raise UsageProblem(
                f"{self.model_path}: the model output {scores.shape[0]} classes for this frame, "
                f"not {len(self.labels)}"
            )
        confidences = np.ascontiguousarray(softmax(scores, axis=0))
        return Segmentation(confidences=confidences, labels=self.labels)

    def close(self) -> None:
        """Free the ONNX Runtime session; closing twice is harmless."""
        self._session = None

    def __enter__(self) -> OnnxSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
