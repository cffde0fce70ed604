"""SSD-style person detectors (OpenVINO IR or ONNX) run by the OpenVINO runtime: the fast CPU choice.

Any model with one NCHW (or NHWC) image input and a ``DetectionOutput``-style output of rows
``[image_id, label, conf, x0, y0, x1, y1]`` in relative coordinates works; Intel's person-detection-retail-0013
is the default. The input size is read from the model, and resizing, the u8 -> f32 cast and the RGB -> BGR swap are
compiled into the graph with OpenVINO's PrePostProcessor: that is about twice as fast as doing them with OpenCV and
numpy, because the frame crosses into the runtime as 1.3 MB of bytes instead of a float tensor.

By default the frame is squeezed into the model's own input size (544x320 for retail-0013), which loses small
people: ``max_input_pixels`` instead reshapes the network to each frame's own size and aspect (it is fully
convolutional, and its PriorBoxClustered layers follow the input), scaled down only to stay within that many pixels.
On MOT17's street scenes that alone took retail-0013 from 36 % recall (precision 0.76) to 63 % (precision 0.89) at
score >= 0.5, for about twice the detection time on a 768x576 frame (benchmarks/RESULTS.md, issue 28 part 2).

``detect`` runs one frame with the LATENCY hint (all cores on one request); ``detect_batch`` keeps several
asynchronous requests of a THROUGHPUT compilation (one stream per core or so) busy, which is what lets ingest keep up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reidkit.errors import ConfigError, ModelError, ReidkitError
from reidkit.openvino_core import shared_core
from reidkit.shared_files import find_shared_file
from reidkit.video.detectors.boxes import finish_detections
from reidkit.video.types import empty_detections

DETECTOR_ENV_VAR = "REIDKIT_PERSON_DETECTOR"
_MIN_INPUT_PIXELS = 32 * 32
_SHARED_MODEL = Path("models/person-detection-retail-0013/person-detection-retail-0013.xml")
_PACKAGED_MODEL = Path(__file__).resolve().parents[1] / _SHARED_MODEL

ColorOrder = Literal["BGR", "RGB"]
# Devices that dispatch to others and so never appear in Core.available_devices.
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")


def default_openvino_model() -> Path:
    """The detector used when none is named: ``$REIDKIT_PERSON_DETECTOR``, else the shared copy beside the repo,
    else the copy shipped in the package (video/models/, with its licence and card), so no run needs a download."""
    path = find_shared_file(DETECTOR_ENV_VAR, _SHARED_MODEL, "an OpenVINO .xml or .onnx model")
    if path is None and _PACKAGED_MODEL.is_file():
        path = _PACKAGED_MODEL
    if path is None:
        raise ModelError(
            f"no person detector model: set {DETECTOR_ENV_VAR} (or pass a model path) to an OpenVINO IR .xml / .onnx "
            "SSD detector such as Open Model Zoo's person-detection-retail-0013, or use the 'hog' detector"
        )
    return path


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ReidkitError(
            f"the OpenVINO detector needs the openvino runtime ({exc}); pip install 'reidkit[openvino]'"
        ) from exc
    return openvino


@dataclass
class OpenVinoSsdDetector:
    """An SSD-style detector compiled by OpenVINO; ``person_label`` keeps one class of a multi-class model.

    ``score_threshold`` defaults low (0.1) because ByteTrack's second association stage feeds on weak detections;
    use 0.5 when the detections are used on their own.
    """

    model_path: Path
    score_threshold: float = 0.1
    device: str = "CPU"
    person_label: int | None = None
    color_order: ColorOrder = "BGR"
    max_input_pixels: int | None = None
    name: str = field(init=False)
    _ov: Any = field(init=False, repr=False)
    _core: Any = field(init=False, repr=False)
    _model_size: tuple[int, int] = field(init=False)
    _nhwc: bool = field(init=False)
    _output_index: int = field(init=False)
    _request_pool: dict[tuple[int, int, str], list[Any]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ConfigError(f"detector score_threshold must be in [0, 1), got {self.score_threshold}")
        if self.color_order not in ("BGR", "RGB"):
            raise ConfigError(f"detector color_order must be 'BGR' or 'RGB', got {self.color_order!r}")
        if self.max_input_pixels is not None and self.max_input_pixels < _MIN_INPUT_PIXELS:
            raise ConfigError(f"detector max_input_pixels must be >= {_MIN_INPUT_PIXELS}, got {self.max_input_pixels}")
        self.model_path = Path(self.model_path).expanduser()
        self._ov = _import_openvino()
        self._core = shared_core()  # never a Core of its own: see reidkit.openvino_core
        plugin = self.device.split(":")[0].split(".")[0]
        if plugin not in (*self._core.available_devices, *_VIRTUAL_DEVICES):
            raise ConfigError(
                f"OpenVINO device {self.device!r} is not available here; use one of "
                f"{', '.join(self._core.available_devices + list(_VIRTUAL_DEVICES))}"
            )
        model = self._read_model()
        self.name = f"openvino:{self.model_path.stem}"
        if self.max_input_pixels is not None:
            self.name += f"@{self.max_input_pixels // 1000}kpx"
        if len(model.inputs) != 1:
            raise ModelError(f"{self.model_path} has {len(model.inputs)} inputs; an SSD detector takes one image")
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise ModelError(f"{self.model_path}: expected a 4-D image input, found {shape}")
        dims = [d.get_length() if d.is_static else -1 for d in shape]
        self._nhwc = dims[3] == 3 and dims[1] != 3
        height, width = (dims[1], dims[2]) if self._nhwc else (dims[2], dims[3])
        if height <= 0 or width <= 0:
            raise ModelError(f"{self.model_path} has a dynamic input size {shape}; export it with a fixed height/width")
        self._model_size = (height, width)
        outputs = [i for i, out in enumerate(model.outputs) if _last_dim(out) == 7]
        if not outputs:
            raise ModelError(
                f"{self.model_path} has no SSD DetectionOutput (rows of 7: image_id, label, conf, x0, y0, x1, y1)"
            )
        self._output_index = outputs[0]

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        request = self._requests(image_rgb.shape[:2], "LATENCY")[0]
        request.infer(image_rgb[None])
        return self._decode(request.get_output_tensor(self._output_index).data, image_rgb.shape)

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]:
        """Keeps every THROUGHPUT request busy, reading each result back on this thread as its request is reused.

        Results are collected here rather than in OpenVINO completion callbacks on purpose: Python code in the
        runtime's threads can trigger a garbage collection that destroys another detector's requests from inside
        its own worker thread, which aborts the process ("Resource deadlock avoided").
        """
        results = [empty_detections()] * len(images_rgb)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images_rgb):
            by_shape.setdefault(image.shape[:2], []).append(i)
        for shape, indices in by_shape.items():
            requests = self._requests(shape, "THROUGHPUT")
            in_flight: list[int | None] = [None] * len(requests)
            for n, i in enumerate(indices):
                slot = n % len(requests)
                self._collect(requests[slot], in_flight[slot], images_rgb, results)
                requests[slot].start_async(images_rgb[i][None])
                in_flight[slot] = i
            for request, i in zip(requests, in_flight, strict=True):
                self._collect(request, i, images_rgb, results)
        return results

    def _collect(self, request: Any, i: int | None, images: list[np.ndarray], results: list[np.ndarray]) -> None:
        if i is not None:
            request.wait()
            results[i] = self._decode(request.get_output_tensor(self._output_index).data, images[i].shape)

    def _requests(self, frame_size: tuple[int, int], hint: str) -> list[Any]:
        """Infer requests for this frame size and hint, created once: as many as the hint makes worth running."""
        key = (frame_size[0], frame_size[1], hint)
        if key not in self._request_pool:
            compiled = self._compile(frame_size, hint)
            count = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._request_pool[key] = [compiled.create_infer_request() for _ in range(max(1, count))]
        return self._request_pool[key]

    def _decode(self, raw: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
        rows = np.asarray(raw, dtype=np.float32).reshape(-1, 7)
        valid = rows[:, 0] >= 0  # image_id -1 marks the end of the detections
        rows = rows[valid & (rows[:, 2] >= self.score_threshold)]
        if self.person_label is not None:
            rows = rows[rows[:, 1] == self.person_label]
        height, width = frame_shape[:2]
        boxes = rows[:, 3:7] * np.array([width, height, width, height], dtype=np.float32)
        return finish_detections(boxes, rows[:, 2], frame_shape)

    def _compile(self, frame_size: tuple[int, int], hint: str) -> Any:
        """Compile for one frame size: a static input shape lets the CPU plugin pick its fastest kernels."""
        ov = self._ov
        from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

        model = self._read_model()
        if self.max_input_pixels is not None:
            self._reshape(model, network_input_size(frame_size, self.max_input_pixels))
        ppp = PrePostProcessor(model)
        tensor = ppp.input().tensor()
        tensor.set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.RGB)
        tensor.set_spatial_static_shape(frame_size[0], frame_size[1])
        steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
        if self.color_order == "BGR":
            steps.convert_color(ColorFormat.BGR)
        steps.resize(ResizeAlgorithm.RESIZE_LINEAR)
        ppp.input().model().set_layout(ov.Layout("NHWC" if self._nhwc else "NCHW"))
        try:
            compiled = self._core.compile_model(ppp.build(), self.device, {"PERFORMANCE_HINT": hint})
        except RuntimeError as exc:
            reason = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("Exception from")]
            raise ModelError(
                f"OpenVINO cannot compile {self.model_path} for device {self.device!r} "
                f"({reason[-1] if reason else 'unknown reason'})"
            ) from exc
        return compiled

    def _reshape(self, model: Any, size: tuple[int, int]) -> None:
        dims = [1, size[0], size[1], 3] if self._nhwc else [1, 3, size[0], size[1]]
        try:
            model.reshape(dims)
        except RuntimeError as exc:
            raise ModelError(
                f"{self.model_path} cannot take a {size[1]}x{size[0]} input (max_input_pixels needs a fully "
                "convolutional SSD such as person-detection-retail-0013)"
            ) from exc

    def _read_model(self) -> Any:
        if not self.model_path.is_file():
            raise ModelError(f"detector model {self.model_path} does not exist; pass an OpenVINO .xml or .onnx file")
        if self.model_path.suffix == ".xml" and not self.model_path.with_suffix(".bin").is_file():
            weights = self.model_path.with_suffix(".bin")
            raise ModelError(f"{self.model_path} needs its weights file {weights} beside it")
        try:
            return self._core.read_model(str(self.model_path))
        except RuntimeError as exc:  # OpenVINO's message is a multi-line trace of its frontends; the cause is chained
            raise ModelError(
                f"OpenVINO cannot read {self.model_path}: it is not a valid OpenVINO IR .xml or ONNX model"
            ) from exc


def network_input_size(frame_size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """(height, width) to run the network at for a frame: the frame's own aspect, never upscaled, at most
    ``max_pixels``, rounded down to whole multiples of 32 (the coarsest feature map's stride)."""
    height, width = frame_size
    scale = min(1.0, (max_pixels / (height * width)) ** 0.5)
    return max(32, int(height * scale) // 32 * 32), max(32, int(width * scale) // 32 * 32)


def _last_dim(output: Any) -> int:
    shape = output.get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() == 0 or shape[-1].is_dynamic:
        return -1
    return int(shape[-1].get_length())
