"""``Segmenter``: camera frames in, label maps out, on TensorRT, ONNX Runtime or PyTorch.

    from fornet.runtime import Segmenter

    with Segmenter("export/fornet.plan") as seg:          # or fornet.onnx, or model.pth + input_size
        labels = seg(frame)                                # uint8 BGR HxWx3 -> uint8 HxW trainIds
        shown = seg.overlay(frame, labels, alpha=0.5)
        batch = seg.segment_batch([frame_a, frame_b])      # list of Segmentation(labels, overlay)
        future = seg.submit(frame)                         # async: a worker thread runs it

The model configures the segmenter: input size, layout, dtype and normalisation, output kind,
classes and colours come from the export sidecar (``fornet.onnx.json``; a plan uses the sidecar
of the ONNX it was built from). Frames may have any size; labels come back at the frame's size.
TensorRT plans pre/post-process on the GPU by default (``gpu_prepost``); the other backends on
the CPU, with the same semantics (see :mod:`fornet.runtime.cpu_prepost`). ``close()`` (or leaving
the ``with`` block) frees the model and its GPU memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

from fornet.calibration.preprocess import check_image
from fornet.model.memory import check_memory
from fornet.runtime.backend import Backend, deactivate_after_error
from fornet.runtime.cpu_prepost import alpha_to_256, overlay, preprocess_frames
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.model_io import ModelIO, ModelSidecar, SidecarError, check_sidecar_binding
from fornet.runtime.pipelines import CpuPipeline, GpuPipeline, Segmentation, StageTimes
from fornet.runtime.tensorrt.plan_metadata import check_plan_binding, onnx_sidecar_for_plan

#: Backend names, and the file extensions each loads.
BACKENDS = {"tensorrt": (".plan", ".engine"), "onnxruntime": (".onnx",), "torch": (".pth", ".pt")}


class SegmenterError(FornetRuntimeError):
    """A model path or option the segmenter cannot use."""


def resolve_backend(path: str | os.PathLike[str], backend: str = "auto") -> str:
    """The backend for ``path``: ``backend`` itself, or (``"auto"``) the one its extension implies."""
    suffix = Path(path).suffix.lower()
    accepted = ", ".join(f"{ext} ({name})" for name, exts in BACKENDS.items() for ext in exts)
    if backend == "auto":
        for name, extensions in BACKENDS.items():
            if suffix in extensions:
                return name
        raise SegmenterError(f"cannot tell the backend of {Path(path).name!r} from its extension; pass a file "
                             f"ending in {accepted}, or name the backend explicitly")
    if backend not in BACKENDS:
        raise SegmenterError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
    return backend


def _torch_device(device: int | str) -> str:
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{device}" if isinstance(device, int) else str(device)


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


class Segmenter:
    """Semantic segmentation of BGR frames with an exported FoR-Net (see the module docstring).

    Args:
        path: a TensorRT plan (``.plan``/``.engine``), an ONNX file, or a checkpoint (``.pth``).
        backend: ``"auto"`` (from the extension), ``"tensorrt"``, ``"onnxruntime"`` or ``"torch"``.
        device: GPU index, or ``"cpu"`` (ONNX Runtime and PyTorch then stay on the CPU; ONNX
            Runtime otherwise takes its CUDA provider when installed, PyTorch CUDA when available).
        sidecar: the model's sidecar JSON, when not beside the model file.
        input_size: ``(H, W)`` network input for a checkpoint (required there, ignored otherwise).
        variant: architecture of a bare checkpoint state_dict.
        threads: CPU threads of ONNX Runtime / PyTorch.
        providers: ONNX Runtime execution providers, in priority order.
        plugin: TopKGate plugin library for TensorRT (default: searched).
        cuda_graph: TensorRT: replay the engine as a CUDA graph.
        gpu_prepost: TensorRT: pre/post-process with the CUDA kernels (else on the CPU).
        verify_sidecar: refuse a sidecar whose recorded sha256 does not match the model (or, for a plan,
            the ONNX it was built from); turn off only for files edited on purpose.

    Raises:
        FornetError: a missing or unsupported file, a missing sidecar, TensorRT / pycuda / GPU /
            plugin library, or an engine built by another TensorRT version.
    """

    def __init__(self, path: str | os.PathLike[str], backend: str = "auto", device: int | str = 0, *,
                 sidecar: str | os.PathLike[str] | None = None, input_size: tuple[int, int] | None = None,
                 variant: str | None = None, threads: int | None = None, providers: Sequence[str] | None = None,
                 plugin: str | os.PathLike[str] | None = None, cuda_graph: bool = False,
                 gpu_prepost: bool = True, verify_sidecar: bool = True) -> None:
        self.path = Path(path)
        self.backend_name = resolve_backend(self.path, backend)
        if not self.path.is_file():
            raise SegmenterError(f"model file not found: {self.path}; export one with fornet-export (ONNX), build "
                                 "a plan with fornet-build, or fix the path")
        io = None
        if self.backend_name != "torch":
            is_plan = self.backend_name == "tensorrt"  # a plan is described by the sidecar of its source ONNX
            if sidecar is not None:
                io_source = Path(sidecar)
            else:
                io_source = onnx_sidecar_for_plan(self.path) if is_plan else ModelSidecar.path_for(self.path)
            record = ModelSidecar.load(io_source)
            if verify_sidecar and is_plan:
                check_plan_binding(record, io_source, self.path)
            elif verify_sidecar:
                check_sidecar_binding(record, io_source, self.path)
            io = record.model_io(str(io_source))
            if record.activations is not None:  # recorded by fornet export (older sidecars have none)
                check_memory(record.activations, io.input_size, io.batch or 1, work="inference")
        self._backend = self._make_backend(device, input_size, variant, threads, providers, plugin, cuda_graph)
        self._backend.activate()
        try:
            if io is None:
                from fornet.runtime.torch_backend import TorchBackend

                assert isinstance(self._backend, TorchBackend)
                io = self._backend.model_io
            else:
                check_model_io(io, self._backend, str(io_source))
            self.io: ModelIO = io
            self._pipeline: CpuPipeline | GpuPipeline = self._make_pipeline(gpu_prepost)
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

    def _make_backend(self, device: int | str, input_size: tuple[int, int] | None, variant: str | None,
                      threads: int | None, providers: Sequence[str] | None, plugin: str | os.PathLike[str] | None,
                      cuda_graph: bool) -> Backend:
        if self.backend_name == "tensorrt":
            from fornet.runtime.tensorrt.backend import TensorRTBackend

            if not isinstance(device, int):
                raise SegmenterError(f"TensorRT runs on a GPU: pass device=<GPU index>, not {device!r}")
            return TensorRTBackend(self.path, device=device, plugin=plugin, cuda_graph=cuda_graph)
        if self.backend_name == "onnxruntime":
            from fornet.runtime.onnxrt import OnnxRuntimeBackend

            chosen = ["CPUExecutionProvider"] if device == "cpu" and providers is None else providers
            return OnnxRuntimeBackend(self.path, providers=chosen, threads=threads)
        from fornet.runtime.torch_backend import TorchBackend

        if input_size is None:
            raise SegmenterError("a checkpoint does not fix the network input size: pass input_size=(H, W), e.g. the "
                                 "size the deployed engine was exported for")
        return TorchBackend(self.path, input_size, device=_torch_device(device), variant=variant, threads=threads)

    def _make_pipeline(self, gpu_prepost: bool) -> CpuPipeline | GpuPipeline:
        if self.backend_name != "tensorrt":
            return CpuPipeline(self._backend, self.io)
        from fornet.runtime.tensorrt.backend import TensorRTBackend

        assert isinstance(self._backend, TensorRTBackend)
        if gpu_prepost:
            return GpuPipeline(self._backend, self.io)
        return CpuPipeline(self._backend, self.io, self._backend.max_batch)

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

    def segment_batch(self, frames: Sequence[np.ndarray], overlay_alpha: float | None = None) -> list[Segmentation]:
        """Segment several frames (of any sizes) in as few model runs as the model's batch allows."""
        checked = [check_image(frame, f"frame {index}") for index, frame in enumerate(frames)]
        if not checked:
            raise SegmenterError("segment_batch got no frames; pass at least one")
        if overlay_alpha is not None:
            alpha_to_256(overlay_alpha)
        with self._lock:
            self._require_open()
            results, self.last_times = self._pipeline.run(checked, overlay_alpha)
        return results

    def submit(self, frame: np.ndarray, overlay_alpha: float | None = None) -> Future[Segmentation]:
        """Segment ``frame`` on the segmenter's worker thread; results arrive in submission order.

        Safe from any thread and from a future's done-callback; after :meth:`close` it raises
        :class:`SegmenterError`.
        """
        check_image(frame, "frame")
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
