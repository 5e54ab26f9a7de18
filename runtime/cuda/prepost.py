"""The CUDA pre/post-processing kernels of ``prepost.cu``, compiled and launched through pycuda.

:class:`GpuPrePost` binds the kernels to one model's I/O contract and keeps, per batch slot, a
pinned host buffer and a device buffer for the frame (uploaded as uint8 BGR), the labels and the
optional overlay (downloaded as uint8): only the frame goes up and only labels (and the overlay,
if asked for) come down. Every method enqueues on the given stream and must be called with the
CUDA context current; results are valid after the stream is synchronised.

The source is compiled on first use with nvcc for the current GPU (pycuda caches the cubin), so
the target needs the CUDA toolkit's nvcc (JetPack ships it in /usr/local/cuda/bin).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from fornet.runtime.cpu_prepost import alpha_to_256
from fornet.runtime.cuda.device_array import DeviceArray, synchronize_stream
from fornet.runtime.cuda.toolchain import find_nvcc
from fornet.runtime.errors import CudaError
from fornet.runtime.model_io import ModelIO

KERNEL_SOURCE = Path(__file__).with_name("prepost.cu")
PRE_KERNELS = {"float32": "fornet_pre_nchw_f32", "float16": "fornet_pre_nchw_f16", "uint8": "fornet_pre_nhwc_u8"}
POST_KERNELS = {"float32": "fornet_post_logits_f32", "float16": "fornet_post_logits_f16",
                "uint8": "fornet_post_labels_u8", "int32": "fornet_post_labels_i32"}
#: The first pass of score outputs: per network pixel its argmax, margin and magnitude (see ``prepost.cu``).
CERTAIN_KERNELS = {"float32": "fornet_post_certain_f32", "float16": "fornet_post_certain_f16"}
_BLOCK = (32, 8, 1)


class KernelBuildError(CudaError):
    """The pre/post kernels cannot be compiled or loaded."""


def compile_prepost_module() -> Any:
    """``prepost.cu`` compiled for the current context's GPU (a pycuda ``SourceModule``)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise KernelBuildError("the GPU pre/post kernels are compiled at first use with nvcc, which was not found "
                               "($CUDACXX, PATH, /usr/local/cuda/bin/nvcc); install the CUDA toolkit (JetPack ships "
                               "it) or pre/post-process on the CPU (--prepost cpu; Segmenter(..., prepost='cpu'))")
    compiler = importlib.import_module("pycuda.compiler")
    try:
        return compiler.SourceModule(KERNEL_SOURCE.read_text(encoding="utf-8"), nvcc=str(nvcc), no_extern_c=True,
                                     options=["-O3", "-std=c++17"])
    except Exception as exc:  # pycuda.driver.CompileError, LogicError, ...
        raise KernelBuildError(f"cannot build {KERNEL_SOURCE.name} with {nvcc}: {exc}; check the CUDA toolkit "
                               "matches the driver, or pre/post-process on the CPU (--prepost cpu)") from exc


def _grid(height: int, width: int) -> tuple[int, int]:
    return (width + _BLOCK[0] - 1) // _BLOCK[0], (height + _BLOCK[1] - 1) // _BLOCK[1]


class _Staging:
    """A grow-only pair of pinned host and device buffers."""

    def __init__(self, cuda: Any) -> None:
        self._cuda = cuda
        self.host: np.ndarray = np.empty(0, np.uint8)
        self.device: Any = None

    def ensure(self, nbytes: int) -> None:
        if nbytes > self.host.nbytes:
            self.free()
            self.host = self._cuda.pagelocked_empty(nbytes, np.uint8)
            self.device = self._cuda.mem_alloc(nbytes)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.host[: int(np.prod(shape))].reshape(shape)

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            self.device = None
        self.host = np.empty(0, np.uint8)


class _DeviceScratch:
    """A grow-only device buffer (no host side)."""

    def __init__(self, cuda: Any) -> None:
        self._cuda = cuda
        self.nbytes = 0
        self.device: Any = None

    def ensure(self, nbytes: int) -> int:
        """The buffer's address, at least ``nbytes`` long."""
        if nbytes > self.nbytes:
            self.free()
            self.device = self._cuda.mem_alloc(nbytes)
            self.nbytes = nbytes
        return int(self.device)

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            self.device = None
        self.nbytes = 0


class _Slot:
    """Staging for one frame of a batch: frame in, labels and overlay out, the score pass's cells.

    ``source`` is where the post kernel reads the frame for the overlay (address, row pitch): the
    staged upload, or the caller's device frame (kept alive in ``device_frame`` until the results are
    taken). ``device_results`` holds labels and an overlay that stay on the GPU.
    """

    def __init__(self, cuda: Any) -> None:
        self.frame = _Staging(cuda)
        self.labels = _Staging(cuda)
        self.overlay = _Staging(cuda)
        self.cells = _DeviceScratch(cuda)
        self.source: tuple[int, int] = (0, 0)
        self.device_frame: DeviceArray | None = None
        self.device_results: tuple[DeviceArray, DeviceArray | None] | None = None

    def free(self) -> None:
        for staging in (self.frame, self.labels, self.overlay, self.cells):
            staging.free()
        self.device_frame = self.device_results = None


class GpuPrePost:
    """The fused kernels for one model (see the module docstring).

    Args:
        cuda: ``pycuda.driver`` (the caller has the CUDA context current).
        io: the model's I/O contract (input dtype and layout, normalisation, output, palette).
    """

    def __init__(self, cuda: Any, io: ModelIO) -> None:
        input_type, output_type = io.input_dtype.name, io.output_dtype.name
        if input_type not in PRE_KERNELS or output_type not in POST_KERNELS:
            raise KernelBuildError(f"no GPU kernels for {input_type} input / {output_type} output; use "
                                   "--prepost cpu")
        self._cuda = cuda
        self._io = io
        module = compile_prepost_module()
        self._pre: Any = module.get_function(PRE_KERNELS[input_type])
        self._pre.prepare("PiiiPiiddi" if io.raw_input else "PiiiPiiddiffffff")
        self._post: Any = module.get_function(POST_KERNELS[output_type])
        self._certain: Any = None
        if output_type in CERTAIN_KERNELS:
            self._certain = module.get_function(CERTAIN_KERNELS[output_type])
            self._certain.prepare("PiiiPPP")
            self._post.prepare("PiiiPPPddPiiPiPPii")
        else:
            self._post.prepare("PiiiPiiPiPPii")
        palette = np.ascontiguousarray(io.palette_bgr)
        self._palette: Any = cuda.mem_alloc(palette.nbytes)
        cuda.memcpy_htod(self._palette, palette)
        self._slots: list[_Slot] = []
        #: Device results' memory: returned to the pool when their arrays go, reused for the next frames
        #: (no cuMemAlloc per frame).
        self._results_pool: Any = importlib.import_module("pycuda.tools").DeviceMemoryPool()

    def _device_array(self, shape: tuple[int, ...]) -> DeviceArray:
        """uint8 device memory of ``shape`` from the results pool, owned by the returned array."""
        allocation = self._results_pool.allocate(int(np.prod(shape)))
        return DeviceArray.contiguous(int(allocation), shape, np.dtype(np.uint8), allocation)

    def _slot(self, index: int) -> _Slot:
        while len(self._slots) <= index:
            self._slots.append(_Slot(self._cuda))
        return self._slots[index]

    def preprocess(self, index: int, frame: np.ndarray | DeviceArray, destination: int, stream: Any) -> None:
        """Write the network input of ``frame`` (uint8 BGR) at ``destination``.

        A host frame is uploaded into slot ``index`` first; a device frame (already checked by
        :func:`~fornet.runtime.cuda.device_array.check_device_frame`) is read where it is, after its
        producer stream, if it names one, has finished.
        """
        slot = self._slot(index)
        h, w = frame.shape[0], frame.shape[1]
        if isinstance(frame, DeviceArray):
            if frame.stream is not None:
                synchronize_stream(frame.stream)
            slot.device_frame, slot.source = frame, (frame.pointer, frame.strides[0])
        else:
            slot.frame.ensure(frame.nbytes)
            np.copyto(slot.frame.view(frame.shape), frame)
            self._cuda.memcpy_htod_async(slot.frame.device, slot.frame.view(frame.shape), stream)
            slot.device_frame, slot.source = None, (int(slot.frame.device), w * 3)
        dst_h, dst_w = self._io.input_size
        scales = (1.0 / (dst_h / h), 1.0 / (dst_w / w))  # OpenCV's in/out scales, computed its way
        swap_rb = int(self._io.channel_order == "RGB")  # frames are BGR
        args: list[Any] = [*slot.source[:1], h, w, slot.source[1], destination, dst_h, dst_w, *scales, swap_rb]
        if not self._io.raw_input:
            args += [*self._io.mean, *self._io.std]
        self._pre.prepared_async_call(_grid(dst_h, dst_w), _BLOCK, stream, *args)

    def postprocess(self, index: int, source: int, source_hw: tuple[int, int], frame_hw: tuple[int, int],
                    overlay_alpha: float | None, stream: Any, keep_on_device: bool = False) -> None:
        """Labels (and the overlay) of slot ``index`` from the network output at ``source``.

        They are downloaded into the slot's pinned buffers, or with ``keep_on_device`` written to new
        device memory, which :meth:`results` hands over.
        """
        slot = self._slot(index)
        h, w = frame_hw
        if keep_on_device:
            labels = self._device_array((h, w))
            drawn = None if overlay_alpha is None else self._device_array((h, w, 3))
            slot.device_results = (labels, drawn)
            labels_at, overlay = labels.pointer, 0 if drawn is None else drawn.pointer
        else:
            slot.labels.ensure(h * w)
            if overlay_alpha is not None:
                slot.overlay.ensure(h * w * 3)
            labels_at, overlay = int(slot.labels.device), 0 if overlay_alpha is None else int(slot.overlay.device)
        alpha = 0 if overlay_alpha is None else alpha_to_256(overlay_alpha)
        classes, (src_h, src_w) = self._io.num_classes, source_hw
        drawing = (labels_at, h, w, *slot.source, overlay, self._palette, classes, alpha)
        if self._certain is None:
            self._post.prepared_async_call(_grid(h, w), _BLOCK, stream, source, classes, src_h, src_w, *drawing)
        else:  # scores: the network pixels' certain labels, margins and magnitudes, then the frame pixels
            pixels = src_h * src_w
            margins = slot.cells.ensure(pixels * 9)
            magnitudes, certain = margins + pixels * 4, margins + pixels * 8
            self._certain.prepared_async_call(_grid(src_h, src_w), _BLOCK, stream, source, classes, src_h, src_w,
                                              certain, margins, magnitudes)
            self._post.prepared_async_call(_grid(h, w), _BLOCK, stream, source, classes, src_h, src_w, certain,
                                           margins, magnitudes, src_h / h, src_w / w, *drawing)
        if not keep_on_device:
            self._cuda.memcpy_dtoh_async(slot.labels.view((h, w)), slot.labels.device, stream)
            if overlay_alpha is not None:
                self._cuda.memcpy_dtoh_async(slot.overlay.view((h, w, 3)), slot.overlay.device, stream)

    def results(self, index: int, frame_hw: tuple[int, int], with_overlay: bool
                ) -> tuple[np.ndarray, np.ndarray | None] | tuple[DeviceArray, DeviceArray | None]:
        """Slot ``index``'s labels and overlay (after the stream was synchronised).

        Host copies, or the device arrays :meth:`postprocess` wrote with ``keep_on_device``; the slot
        lets go of them and of a device frame.
        """
        slot = self._slot(index)
        slot.device_frame = None
        if slot.device_results is not None:
            results, slot.device_results = slot.device_results, None
            return results
        h, w = frame_hw
        overlay = slot.overlay.view((h, w, 3)).copy() if with_overlay else None
        return slot.labels.view((h, w)).copy(), overlay

    def free(self) -> None:
        """Free every buffer and unload the module (with the CUDA context current).

        pycuda's kernel functions keep their module alive; dropping them here unloads it while the
        context is still current, instead of whenever the garbage collector gets to it.
        """
        try:
            for slot in self._slots:
                slot.free()
            if self._palette is not None:
                self._palette.free()
            # Results still held by the caller are freed when they go; the pool keeps none back.
            self._results_pool.stop_holding()
        finally:
            self._slots = []
            self._palette = None
            self._pre = self._post = self._certain = None
