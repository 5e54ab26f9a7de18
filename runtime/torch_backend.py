"""PyTorch backend: the reference FoR-Net from a checkpoint, behind the same :class:`Backend` interface.

Inputs and outputs are named like the exported ONNX graph (``image`` -> ``logits``, ``masks``), so
the segmenter and the benchmark drive it exactly as they drive an engine. It runs in eval mode
without autograd, on the CPU or one CUDA device.

On a CUDA GPU it also offers device buffers (:class:`~fornet.runtime.pipelines.DeviceBuffers`), so the
GPU pre/post kernels run around it as they run around a TensorRT plan: a persistent input and
``logits`` tensor, and one CUDA stream created by pycuda in the device's primary context (the one
PyTorch uses) and handed to PyTorch as an ``ExternalStream``; kernels and model are ordered on it and
share the tensors' memory with no copy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fornet.calibration.labels import class_table
from fornet.model.memory import activation_profile, check_memory
from fornet.options import parse_device
from fornet.runtime.backend import Backend, BackendError, TensorSpec
from fornet.runtime.cuda.context import CudaContext, release_quietly
from fornet.runtime.cuda.device import NoGpuError
from fornet.runtime.model_io import ModelIO, make_model_io

if TYPE_CHECKING:
    from fornet.runtime.model_spec import ModelSpec

#: ``--precision`` -> the autocast dtype's name (``None``: FP32, no autocast).
_AUTOCAST = {"auto": None, "fp32": None, "fp16": "float16", "bf16": "bfloat16"}


class TorchBackend(Backend):
    """Run a FoR-Net checkpoint with PyTorch.

    Args:
        checkpoint: any checkpoint :func:`fornet.model.load_model` accepts.
        input_size: ``(H, W)`` of the network input (a checkpoint does not fix one).
        device: ``"cpu"``, ``"cuda:N"`` (``"cuda"``, ``N``) or ``"auto"`` (CUDA GPU 0 when PyTorch sees one).
        variant: architecture, for bare state_dicts that do not record it.
        threads: intra-op threads (``torch.set_num_threads``, a process-wide setting).
        precision: ``"fp32"`` (or ``"auto"``), or ``"fp16"``/``"bf16"``: the model runs under autocast.
    """

    NAME = "torch"
    LABEL = "pytorch"
    SUFFIXES = (".pth", ".pt")
    LIBRARIES = (("torch", "pip install torch"),)
    DEVICES = frozenset({"cpu", "cuda"})
    OPTIONS = frozenset({"input_size", "variant"})
    PRECISIONS = ("auto", "fp32", "fp16", "bf16")
    READS_SIDECAR = False
    GPU_PREPOST = True  # on a CUDA device (runs_on_cpu is False); pycuda launches the kernels

    def __init__(self, checkpoint: str | os.PathLike[str], input_size: tuple[int, int], device: int | str = "cpu",
                 variant: str | None = None, threads: int | None = None, precision: str = "auto") -> None:
        super().__init__(f"TorchBackend({Path(checkpoint).name})", parse_device(device))
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}; omit it for PyTorch's default")
        if precision not in _AUTOCAST:
            raise BackendError(f"precision must be one of {', '.join(_AUTOCAST)}, got {precision!r}")
        self.checkpoint = Path(checkpoint)
        self.input_size = input_size
        self.variant = variant
        self.threads = threads
        self.precision = precision
        self._model: Any = None
        self._io: ModelIO | None = None
        self._buffers: _DeviceBuffers | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TorchBackend:
        """The backend of a spec; a checkpoint needs ``input_size`` (``--input-size``)."""
        if spec.input_size is None:
            raise BackendError(f"{spec.path.name} is a checkpoint, which does not fix the network input size: pass "
                               "--input-size HxW (input_size=(H, W)), e.g. the size the deployed model was exported "
                               "for")
        return cls(spec.path, spec.input_size, device=spec.device, variant=spec.variant, threads=spec.threads,
                   precision=spec.precision)

    @property
    def model_io(self) -> ModelIO:
        """The model's I/O contract (normalisation from the checkpoint); only while active."""
        self._require_active()
        assert self._io is not None
        return self._io

    def _activate_impl(self) -> None:
        import torch

        from fornet.model.checkpoint import load_model

        if self.device == "auto":
            self.device = "cuda:0" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise NoGpuError(f"--device {self.device} was requested but PyTorch sees no CUDA GPU; use --device cpu")
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        model = load_model(self.checkpoint, self.variant, map_location=self.device)
        stride = model.config.output_stride
        h, w = self.input_size
        check_memory(activation_profile(model.config), self.input_size, 1, work="inference")
        if h % stride or w % stride:
            raise BackendError(f"input size {h}x{w} is not divisible by the model's output stride {stride}; "
                               "use the size the model was exported for")
        info = model.checkpoint_info
        names, colors = class_table(model.num_classes)
        precision = "fp32" if _AUTOCAST[self.precision] is None else self.precision
        self._io = make_model_io(self.input_size, info.mean, info.std, names, colors, variant=info.variant,
                                 export_precision=f"pytorch-{precision}")
        self._model = model.eval()
        self.inference_precision = precision

    def _deactivate_impl(self) -> None:
        self._model = None
        if self._buffers is not None:
            buffers, self._buffers = self._buffers, None
            buffers.close()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        h, w = self.input_size
        return {"image": TensorSpec((None, 3, h, w), np.dtype(np.float32))}

    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        h, w = self.input_size
        config = self._model.config
        grid = (h // config.output_stride, w // config.output_stride)
        return {"logits": TensorSpec((None, config.num_classes, h, w), np.dtype(np.float32)),
                "masks": TensorSpec((None, len(config.ratios), *grid), np.dtype(np.float32))}

    def _run(self, x: Any) -> tuple[Any, Any]:
        import torch

        dtype = _AUTOCAST[self.precision]
        autocast = (torch.autocast(device_type=x.device.type, dtype=getattr(torch, dtype)) if dtype is not None
                    else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            logits, _, masks = self._model(x)
            return logits.float(), torch.cat(masks, dim=1).float()

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        logits, masks = self._run(torch.from_numpy(feed["image"]).to(self.device))
        return {"logits": logits.cpu().numpy(), "masks": masks.cpu().numpy()}

    def staged_compute(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """A callable that runs the model on ``feed`` already on the device and waits for it.

        On the CPU the input tensor shares the array's memory, so this is :meth:`infer` less the
        output conversion; on a GPU it leaves out both host/device copies.
        """
        import torch

        self._require_active()
        self._check_feed(feed)
        x = torch.from_numpy(feed["image"]).to(self.device)
        cuda = self.device.startswith("cuda")

        def compute() -> None:
            self._run(x)
            if cuda:
                torch.cuda.synchronize(self.device)

        return compute

    # -- device buffers, for the GPU pre/post kernels (runtime.pipelines.DeviceBuffers) -------
    def _device_buffers(self) -> _DeviceBuffers:
        self._require_active()
        if self.runs_on_cpu:
            raise BackendError(f"{self.name} runs on the CPU; its tensors are not device buffers (use --device cuda "
                               "for GPU pre/post-processing)")
        if self._buffers is None:
            self._buffers = _DeviceBuffers(self.device, self.input_size, self._model.config.num_classes, self._run)
        return self._buffers

    @property
    def cuda_context(self) -> CudaContext:
        """The primary context of the model's GPU, as pycuda holds it."""
        return self._device_buffers().context

    @property
    def stream(self) -> Any:
        """The pycuda stream the model and the kernels run on."""
        return self._device_buffers().stream

    def set_batch(self, batch: int) -> None:
        """Size the input and output tensors for ``batch`` frames (they grow, never shrink)."""
        self._device_buffers().set_batch(batch)

    def device_pointer(self, name: str) -> int:
        """The device address of tensor ``name`` (``image`` or ``logits``)."""
        return self._device_buffers().pointer(name)

    def output_shape(self, name: str) -> tuple[int, ...]:
        """The shape of output ``name`` for the current batch."""
        return self._device_buffers().shape(name)

    def enqueue(self) -> None:
        """Run the model on the input tensor, on the stream, into the ``logits`` tensor (no wait)."""
        self._device_buffers().enqueue()


class _DeviceBuffers:
    """The persistent tensors and the shared stream of a PyTorch model on a GPU (see the module docstring)."""

    def __init__(self, device: str, input_size: tuple[int, int], classes: int,
                 run: Callable[[Any], tuple[Any, Any]]) -> None:
        import torch

        self._device = torch.device(device)
        self.context = CudaContext(self._device.index or 0)
        try:
            with self.context as context:
                self.stream: Any = context.driver.Stream()
        except BaseException:
            release_quietly(self.context)
            raise
        self._torch_stream = torch.cuda.ExternalStream(self.stream.handle, device=self._device)
        self._input_size = input_size
        self._classes = classes
        self._run = run
        self._batch = 0
        self._tensors: dict[str, Any] = {}

    def set_batch(self, batch: int) -> None:
        import torch

        if batch < 1:
            raise BackendError(f"batch must be at least 1, got {batch}")
        if not self._tensors or self._tensors["image"].shape[0] < batch:
            h, w = self._input_size
            with torch.cuda.stream(self._torch_stream):
                self._tensors = {
                    "image": torch.empty((batch, 3, h, w), dtype=torch.float32, device=self._device),
                    "logits": torch.empty((batch, self._classes, h, w), dtype=torch.float32, device=self._device)}
        self._batch = batch

    def _tensor(self, name: str) -> Any:
        if not self._batch:
            raise BackendError("set_batch() first: the device tensors are sized per batch")
        if name not in self._tensors:
            raise BackendError(f"no device tensor {name!r}: the GPU pipeline reads 'image' and 'logits'")
        return self._tensors[name]

    def pointer(self, name: str) -> int:
        return int(self._tensor(name).data_ptr())

    def shape(self, name: str) -> tuple[int, ...]:
        return (self._batch, *self._tensor(name).shape[1:])

    def enqueue(self) -> None:
        import torch

        with torch.cuda.stream(self._torch_stream):
            logits, _ = self._run(self._tensors["image"][:self._batch])
            self._tensors["logits"][:self._batch].copy_(logits)

    def close(self) -> None:
        """Wait for the stream, then free the tensors and the stream inside the context, and release it."""

        def free() -> None:
            self.stream.synchronize()
            self._tensors = {}
            self.stream = None

        self.context.close(free)
