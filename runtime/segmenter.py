"""``Segmenter``: camera frames in, label maps out, on TensorRT, ONNX Runtime or PyTorch.

    from fornet.runtime import ModelSpec, Segmenter

    with Segmenter("export/fornet.plan") as seg:          # or fornet.onnx, or a ModelSpec
        labels = seg(frame)                                # uint8 BGR HxWx3 -> uint8 HxW trainIds
        shown = seg.overlay(frame, labels, alpha=0.5)
        batch = seg.segment_batch([frame_a, frame_b])      # list of Segmentation(labels, overlay)
        future = seg.submit(frame)                         # async: a worker thread runs it
    Segmenter(ModelSpec("best.pth", input_size=(512, 1024), device="cuda:0", precision="fp16"))

The model configures the segmenter: input size, layout, dtype and normalisation, output kind,
classes and colours come from the export sidecar (``fornet.onnx.json``; a plan uses the sidecar
of the ONNX it was built from), or from the checkpoint itself. Frames may have any size; labels
come back at the frame's size. Which backend runs the model and which options it takes is the
registry's business (:mod:`fornet.runtime.registry`, :class:`~fornet.runtime.model_spec.ModelSpec`);
a backend on a CUDA GPU with device buffers (TensorRT, PyTorch) pre/post-processes on the GPU unless
``prepost="cpu"``, the others on the CPU, with the same semantics (see :mod:`fornet.runtime.cpu_prepost`).
Frames already on the GPU (PyTorch CUDA tensors, CuPy arrays, NVDEC frames) go to
``segment_device(frames)``, whose labels and overlays stay on the GPU. ``close()``
(or leaving the ``with`` block) frees the model and its GPU memory.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from fornet.calibration.preprocess import check_image
from fornet.model.memory import check_memory
from fornet.readable import check_readable
from fornet.runtime.backend import Backend, deactivate_after_error
from fornet.runtime.cpu_prepost import alpha_to_256, overlay, preprocess_frames
from fornet.runtime.cuda.context import PycudaUnavailableError
from fornet.runtime.cuda.device_array import DeviceArray, check_device_frame, device_array_of, is_device_array
from fornet.runtime.cuda.prepost import KernelBuildError
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.model_io import ModelIO, ModelSidecar, SidecarError
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.pipelines import (
    CpuPipeline,
    DeviceBuffers,
    DeviceSegmentation,
    GpuPipeline,
    Segmentation,
    StageTimes,
)

_log = logging.getLogger(__name__)
#: How to get GPU pre/post-processing, for the messages that need it.
_GPU_PREPOST_FIX = ("open the model on a CUDA GPU with TensorRT or PyTorch (device='cuda', prepost 'auto' or 'gpu'; "
                    "pycuda and nvcc installed)")


class SegmenterError(FornetRuntimeError):
    """A model path or option the segmenter cannot use."""


def check_model_io(io: ModelIO, backend: Backend, source: str) -> None:
    """Refuse a sidecar that does not describe the loaded model's input and output."""
    inputs, outputs = backend.input_specs, backend.output_specs
    spec = inputs.get(io.input_name)
    expected = io.input_shape(1)[1:]
    if spec is None or tuple(spec.shape[1:]) != expected or spec.dtype != io.input_dtype:
        found = {name: s.describe() for name, s in inputs.items()}
        raise SidecarError(f"{source} describes input {io.input_name!r} as ?x{'x'.join(map(str, expected))} "
                           f"{io.input_dtype} but the model takes {found}; use the sidecar written with this "
                           "model (re-export, or rebuild the plan from the matching ONNX)")
    channels = outputs[io.output_name].shape[1] if io.output_name in outputs and not io.labels_output else None
    if isinstance(channels, int) and channels != io.num_classes:
        raise SidecarError(f"{source} names {io.num_classes} classes but the model outputs {channels} class scores; "
                           "use the sidecar written with this model")
    if io.output_name not in outputs:
        raise SidecarError(f"{source} names output {io.output_name!r} but the model outputs {list(outputs)}; use "
                           "the sidecar written with this model")


def sidecar_of(spec: ModelSpec, backend_class: type[Backend]) -> tuple[Path, ModelSidecar]:
    """The sidecar of an exported model: where it is (``spec.sidecar``, else where its backend says) and what it
    says."""
    source = spec.sidecar if spec.sidecar is not None else backend_class.sidecar_path(spec.path)
    return source, ModelSidecar.load(source)


class Segmenter:
    """Semantic segmentation of BGR frames with an exported FoR-Net (see the module docstring).

    Args:
        model: a :class:`~fornet.runtime.model_spec.ModelSpec`, or the path of a TensorRT plan
            (``.plan``/``.engine``), an ONNX file or a checkpoint (``.pth``).
        **fields: :class:`ModelSpec` fields (``backend``, ``device``, ``input_size``, ``threads``,
            ``cuda_graph``, ``prepost``, ...), replacing those of ``model``.

    Raises:
        FornetError: a missing or unsupported file, a missing sidecar, TensorRT / pycuda / GPU /
            plugin library, an option the model's backend does not take, or an engine built by
            another TensorRT version.
    """

    def __init__(self, model: ModelSpec | str | os.PathLike[str], **fields: Any) -> None:
        self.spec = ModelSpec.of(model, **fields)
        backend_class = self.spec.backend_class()
        backend_class.require_libraries()
        if not self.spec.path.is_file():
            raise SegmenterError(f"model file not found: {self.spec.path}; export one with fornet-export (ONNX), "
                                 "build a plan with fornet-build, or fix the path")
        check_readable(self.spec.path, "model file")
        sidecar = sidecar_of(self.spec, backend_class) if backend_class.READS_SIDECAR else None
        if sidecar is not None and sidecar[1].activations is not None:  # recorded by fornet export since 0.1
            io = sidecar[1].model_io(str(sidecar[0]))
            check_memory(sidecar[1].activations, io.input_size, io.batch or 1, work="inference")
        self._backend = backend_class.from_spec(self.spec)
        self._backend.activate()  # a damaged model file fails here, named as such
        try:
            if sidecar is None:
                io = self._backend.model_io
            else:
                source, record = sidecar
                if self.spec.verify_sidecar:
                    backend_class.check_sidecar(record, source, self.spec.path)
                io = record.model_io(str(source))
                check_model_io(io, self._backend, str(source))
            self._check_batch(io)
            self.io: ModelIO = io
            self._pipeline: CpuPipeline | GpuPipeline = self._make_pipeline()
        except BaseException:
            deactivate_after_error(self._backend)
            raise
        self._lock = threading.Lock()  # one model run at a time; guards _closed
        self._state = threading.Lock()  # guards _closing and _executor
        self._worker = threading.local()  # .active is True on the submit() worker thread
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._closed = False
        #: Per-stage seconds of the last call (CUDA event times on the GPU pipeline).
        self.last_times: StageTimes | None = None

    def _check_batch(self, io: ModelIO) -> None:
        """Refuse a ``--batch`` the model cannot take in one call."""
        batch = self.spec.batch
        if batch is None:
            return
        if io.batch is not None and batch != io.batch:
            raise SegmenterError(f"--batch {batch}: {self.spec.path.name} has a static batch of {io.batch}; pass "
                                 f"--batch {io.batch} or omit it (or re-export with `fornet export --dynamic-batch`)")
        largest = self._backend.max_batch
        if largest is not None and batch > largest:
            raise SegmenterError(f"--batch {batch}: {self.spec.path.name} takes up to {largest} frames per call; pass "
                                 f"--batch {largest} or less, or rebuild the plan with --max-batch {batch}")

    def _make_pipeline(self) -> CpuPipeline | GpuPipeline:
        """GPU pre/post where the backend runs on a GPU and has device buffers, unless ``prepost="cpu"``.

        With ``prepost="auto"`` a machine that cannot build the kernels (no pycuda, no nvcc) falls
        back to CPU pre/post-processing with a warning; ``prepost="gpu"`` raises instead.
        """
        backend = self._backend
        if self.spec.prepost == "gpu" and backend.runs_on_cpu:
            raise SegmenterError(f"--prepost gpu: {backend.name} runs on the CPU; pass --device cuda (or "
                                 "--prepost auto)")
        if backend.GPU_PREPOST and not backend.runs_on_cpu and self.spec.prepost != "cpu":
            if not isinstance(backend, DeviceBuffers):
                raise SegmenterError(f"{backend.name} says it has GPU pre/post but exposes no device buffers")
            try:
                return GpuPipeline(backend, self.io, self.spec.batch)
            except (PycudaUnavailableError, KernelBuildError) as exc:
                if self.spec.prepost == "gpu":
                    raise
                _log.warning("GPU pre/post-processing is not available here (%s); pre/post-processing on the CPU",
                             exc)
        return CpuPipeline(self._backend, self.io, self.spec.batch)

    @property
    def backend_name(self) -> str:
        """The registry name of the backend running the model (``tensorrt``, ``onnxruntime``, ``torch``)."""
        return self._backend.NAME

    # -- properties ------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The active backend (for timing its ``infer`` alone)."""
        return self._backend

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` the network sees."""
        return self.io.input_size

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, indexed by label."""
        return self.io.classes

    @property
    def colors(self) -> np.ndarray:
        """``C x 3`` uint8 RGB class colours."""
        return self.io.colors

    @property
    def gpu_prepost(self) -> bool:
        """Whether pre/post-processing runs as CUDA kernels."""
        return isinstance(self._pipeline, GpuPipeline)

    # -- segmentation ----------------------------------------------------------------------
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """uint8 labels (``H x W``, the frame's size) of one uint8 BGR frame."""
        return self.segment(frame).labels

    def segment(self, frame: np.ndarray, overlay_alpha: float | None = None) -> Segmentation:
        """Labels of one frame and, with ``overlay_alpha``, the frame blended with the class colours."""
        return self.segment_batch([frame], overlay_alpha)[0]

    def segment_batch(self, frames: Sequence[np.ndarray | object], overlay_alpha: float | None = None
                      ) -> list[Segmentation]:
        """Segment several frames (of any sizes) in as few model runs as the model's batch allows.

        Frames are uint8 BGR NumPy arrays or, with GPU pre/post-processing (:attr:`gpu_prepost`),
        device arrays too (see :meth:`segment_device`), read in place; the results are host arrays.
        """
        checked = self._checked_frames(frames, "segment_batch")
        if overlay_alpha is not None:
            alpha_to_256(overlay_alpha)
        with self._lock:
            self._require_open()
            if isinstance(self._pipeline, GpuPipeline):
                results, self.last_times = self._pipeline.run(checked, overlay_alpha)
            else:  # _checked_frames let only host frames through
                results, self.last_times = self._pipeline.run(cast("list[np.ndarray]", checked), overlay_alpha)
        return results

    def segment_device(self, frames: Sequence[object], overlay_alpha: float | None = None) -> list[DeviceSegmentation]:
        """Segment frames that are already on the GPU, with no host round trip.

        Each frame is a uint8 ``H x W x 3`` BGR array in the model GPU's memory exporting
        ``__cuda_array_interface__`` or DLPack (a PyTorch CUDA tensor, a CuPy array, an NVDEC frame);
        rows may be pitched. A producer stream the interface names is waited for. Labels and overlays
        come back as device arrays (:class:`~fornet.runtime.pipelines.DeviceSegmentation`). Needs GPU
        pre/post-processing (:attr:`gpu_prepost`: TensorRT, or PyTorch on a CUDA GPU, with pycuda and nvcc).
        """
        if not isinstance(self._pipeline, GpuPipeline):
            raise SegmenterError(f"segment_device() needs GPU pre/post-processing, and this segmenter "
                                 f"({self._backend.label}) pre/post-processes on the CPU: {_GPU_PREPOST_FIX}, or "
                                 "pass host frames to segment_batch()")
        checked = self._checked_frames(frames, "segment_device")
        if overlay_alpha is not None:
            alpha_to_256(overlay_alpha)
        with self._lock:
            self._require_open()
            results, self.last_times = self._pipeline.run_device(checked, overlay_alpha)
        return results

    def _checked_frames(self, frames: Sequence[object], method: str) -> list[np.ndarray | DeviceArray]:
        """Each frame checked: a host image, or (with GPU pre/post) a device frame's view."""
        checked: list[np.ndarray | DeviceArray] = []
        for index, frame in enumerate(frames):
            if not is_device_array(frame):
                checked.append(check_image(frame, f"frame {index}"))
            elif isinstance(self._pipeline, GpuPipeline):
                checked.append(check_device_frame(device_array_of(frame), f"frame {index}"))
            else:
                raise SegmenterError(f"frame {index} is in GPU memory and this segmenter ({self._backend.label}) "
                                     f"pre/post-processes on the CPU: {_GPU_PREPOST_FIX}, or copy the frame to the "
                                     "host first (tensor.cpu().numpy())")
        if not checked:
            raise SegmenterError(f"{method} got no frames; pass at least one")
        return checked

    def submit(self, frame: np.ndarray, overlay_alpha: float | None = None) -> Future[Segmentation]:
        """Segment ``frame`` on the segmenter's worker thread; results arrive in submission order.

        Safe from any thread and from a future's done-callback; after :meth:`close` it raises
        :class:`SegmenterError`.
        """
        self._checked_frames([frame], "submit")
        with self._state:
            if self._closing:
                raise SegmenterError("this segmenter was closed; create a new one")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fornet-segmenter",
                                                    initializer=self._mark_worker)
            return self._executor.submit(self.segment, frame, overlay_alpha)

    def _mark_worker(self) -> None:
        self._worker.active = True

    def overlay(self, frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """``frame`` blended with the colour of each pixel's class (uint8 BGR, CPU)."""
        return overlay(frame, labels, self.io.palette_bgr, alpha)

    def preprocess(self, frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The CPU-preprocessed feed of ``frames`` for :attr:`backend` (padded to a static batch)."""
        checked = [check_image(frame, f"frame {index}") for index, frame in enumerate(frames)]
        return {self.io.input_name: preprocess_frames(checked, self.io, self.io.batch)}

    # -- lifecycle -------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise SegmenterError("this segmenter was closed; create a new one")

    def close(self) -> None:
        """Finish queued work, then free the pipeline and the model (and their GPU memory).

        Safe to call twice, from any thread, and from a future's done-callback (which runs on the
        worker thread: the model is then freed right after the queued frames, without waiting here).
        """
        with self._state:
            if self._closing:
                return
            self._closing = True
            executor = self._executor
        if executor is not None:
            if getattr(self._worker, "active", False):
                executor.submit(self._release)  # after the frames already queued, on this worker
                executor.shutdown(wait=False)
                return
            executor.shutdown(wait=True)
        self._release()

    def _release(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._pipeline.close()
            except BaseException:
                deactivate_after_error(self._backend)  # the pipeline's error is the one to see
                raise
            self._backend.deactivate()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
