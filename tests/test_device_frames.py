"""Frames that stay on the GPU: the device-array view, its checks, and ``Segmenter.segment_device``.

Here (no GPU) the view and every refusal run for real: the CUDA array interface we export is read
back by our own reader and by PyTorch's rules, malformed frames are refused with the fix, and a
segmenter without GPU pre/post refuses device frames. The ``gpu`` tests run the PyTorch CUDA backend
with the pre/post kernels: device frames in, device labels out, equal to the host path's.
"""

from __future__ import annotations

import numpy as np
import pytest

from fornet.runtime import ModelSpec, Segmenter
from fornet.runtime.cuda.device_array import (
    DeviceArray,
    DeviceFrameError,
    check_device_frame,
    device_array_of,
    is_device_array,
)
from fornet.runtime.segmenter import SegmenterError

UINT8 = np.dtype(np.uint8)


class Exported:
    """A foreign producer: any object exporting the interface dict it is given (as CuPy or Numba do)."""

    def __init__(self, interface: dict[str, object]) -> None:
        self.__cuda_array_interface__ = interface


def test_device_array_exports_version_3_of_the_cuda_array_interface():
    array = DeviceArray.contiguous(0x7F00_0000, (4, 6, 3), UINT8, owner=None)
    interface = array.__cuda_array_interface__
    assert interface == {"shape": (4, 6, 3), "typestr": "|u1", "data": (0x7F00_0000, False), "strides": (18, 3, 1),
                         "version": 3, "stream": None}
    assert array.nbytes == 72


def test_reading_an_exported_interface_gives_the_same_view_and_keeps_the_producer():
    producer = Exported({"shape": (2, 5, 3), "typestr": "|u1", "data": (4096, False), "version": 3,
                         "strides": (32, 3, 1), "stream": 7})
    view = device_array_of(producer)
    assert (view.pointer, view.shape, view.strides, view.dtype, view.stream) == (4096, (2, 5, 3), (32, 3, 1),
                                                                                 UINT8, 7)
    assert view.owner is producer
    dense = device_array_of(Exported({"shape": (2, 5, 3), "typestr": "|u1", "data": (4096, False), "version": 2}))
    assert dense.strides == (15, 3, 1) and dense.stream is None
    assert device_array_of(DeviceArray.contiguous(4096, (2, 5, 3), UINT8, None)).strides == (15, 3, 1)


def test_host_arrays_are_not_device_arrays():
    import torch

    assert not is_device_array(np.zeros((2, 2, 3), np.uint8))
    assert not is_device_array(torch.zeros((2, 2, 3), dtype=torch.uint8))  # a CPU tensor: DLPack device 1
    assert is_device_array(DeviceArray.contiguous(4096, (2, 2, 3), UINT8, None))
    with pytest.raises(DeviceFrameError, match="neither __cuda_array_interface__ nor a CUDA __dlpack__"):
        device_array_of(torch.zeros((2, 2, 3), dtype=torch.uint8))


@pytest.mark.fault
@pytest.mark.parametrize(("interface", "message"), [
    ({"shape": (2, 2, 3), "typestr": "|u1"}, "malformed"),
    ({"shape": (2, 2, 3), "typestr": "not a type", "data": (4096, False)}, "malformed"),
    ({"shape": (2, 2, 3), "typestr": "|u1", "data": (4096, False), "strides": (6, 3)}, "2 strides for 3 dimensions"),
])
def test_a_malformed_interface_is_refused(interface, message):
    with pytest.raises(DeviceFrameError, match=message):
        device_array_of(Exported(interface))


@pytest.mark.fault
@pytest.mark.parametrize(("shape", "dtype", "strides", "pointer", "fix"), [
    ((4, 4, 3), np.float32, None, 4096, "uint8 BGR frame as decoded"),
    ((3, 4, 4), np.uint8, None, 4096, "channels last"),
    ((4, 4), np.uint8, None, 4096, "channels last"),
    ((0, 4, 3), np.uint8, None, 4096, "channels last"),
    ((4, 4, 3), np.uint8, (1, 4, 16), 4096, r"tensor.contiguous\(\)"),  # a planar (CHW) tensor, permuted
    ((4, 4, 3), np.uint8, (12, 3, 1), 0, "null address"),
])
def test_a_device_frame_the_pre_kernel_cannot_read_is_refused_with_the_fix(shape, dtype, strides, pointer, fix):
    dense = DeviceArray.contiguous(pointer, shape, np.dtype(dtype), None)
    frame = dense if strides is None else DeviceArray(pointer, shape, np.dtype(dtype), strides)
    with pytest.raises(DeviceFrameError, match=fix):
        check_device_frame(frame)


def test_pitched_rows_are_readable():
    frame = DeviceArray(4096, (4, 5, 3), UINT8, (64, 3, 1))  # rows padded to 64 bytes, as decoders pitch them
    assert check_device_frame(frame) is frame


@pytest.mark.fault
def test_a_cpu_segmenter_refuses_device_frames_and_names_both_ways_out(lite):
    device_frame = DeviceArray.contiguous(4096, (64, 128, 3), UINT8, None)
    with Segmenter(lite.onnx, device="cpu") as segmenter:
        assert not segmenter.gpu_prepost
        with pytest.raises(SegmenterError, match=r"segment_device\(\) needs GPU pre/post.*'cuda'.*segment_batch"):
            segmenter.segment_device([device_frame])
        with pytest.raises(SegmenterError, match=r"frame 1 is in GPU memory and this segmenter \(onnxruntime-cpu\) "
                                                 r"pre/post-processes on the CPU: open .*tensor.cpu\(\).numpy\(\)"):
            segmenter.segment_batch([np.zeros((64, 128, 3), np.uint8), device_frame])


@pytest.mark.fault
def test_gpu_prepost_on_the_cpu_is_refused(lite):
    with pytest.raises(SegmenterError, match=r"--prepost gpu: .* runs on the CPU; pass --device cuda"):
        Segmenter(ModelSpec(lite.checkpoint, input_size=(64, 128), device="cpu", prepost="gpu"))


def test_the_pytorch_backend_on_the_cpu_keeps_cpu_prepost_and_has_no_device_buffers(lite):
    from fornet.runtime.backend import BackendError

    with Segmenter(ModelSpec(lite.checkpoint, input_size=(64, 128), device="cpu")) as segmenter:
        assert not segmenter.gpu_prepost
        with pytest.raises(BackendError, match="runs on the CPU; its tensors are not device buffers"):
            segmenter.backend.stream  # noqa: B018  (the property is the call under test)


# --------------------------------------------------------------------------------- GPU

def _frames(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    return [np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
            for seed, (h, w) in enumerate(sizes)]


@pytest.mark.gpu
def test_pytorch_cuda_runs_the_gpu_kernels_and_agrees_with_cpu_prepost(lite):
    spec = ModelSpec(lite.checkpoint, input_size=(64, 128), device="cuda:0")
    with Segmenter(spec) as gpu, Segmenter(spec, prepost="cpu") as cpu:
        assert gpu.gpu_prepost and not cpu.gpu_prepost
        for frame in _frames([(64, 128), (100, 150), (720, 1280)]):
            agree = float(np.mean(gpu(frame) == cpu(frame)))
            assert agree >= 0.999, agree  # the kernels are bit-exact; the model's float rounding may differ


@pytest.mark.gpu
def test_device_frames_stay_on_the_gpu_and_equal_the_host_path(lite):
    import torch

    spec = ModelSpec(lite.checkpoint, input_size=(64, 128), device="cuda:0")
    frames = _frames([(64, 128), (100, 150), (720, 1280)])
    with Segmenter(spec) as segmenter:
        for frame in frames:
            host = segmenter.segment(frame, overlay_alpha=0.5)
            on_device = torch.from_numpy(frame).cuda()
            wide = torch.zeros((frame.shape[0], frame.shape[1] + 7, 3), dtype=torch.uint8, device="cuda")
            wide[:, :frame.shape[1]] = on_device
            pitched = wide[:, :frame.shape[1]]  # rows 3 * (W + 7) bytes apart, as a decoder's pitched surface
            for device_frame in (on_device, pitched):
                (result,) = segmenter.segment_device([device_frame], overlay_alpha=0.5)
                labels = torch.as_tensor(result.labels, device="cuda")
                assert labels.is_cuda and labels.shape == frame.shape[:2]
                np.testing.assert_array_equal(labels.cpu().numpy(), host.labels)
                assert result.overlay is not None and host.overlay is not None
                np.testing.assert_array_equal(torch.as_tensor(result.overlay, device="cuda").cpu().numpy(),
                                              host.overlay)
                (downloaded,) = segmenter.segment_batch([device_frame], overlay_alpha=0.5)  # device in, host out
                np.testing.assert_array_equal(downloaded.labels, host.labels)
                np.testing.assert_array_equal(downloaded.overlay, host.overlay)
        with pytest.raises(DeviceFrameError, match="channels last"):
            segmenter.segment_device([torch.from_numpy(frames[0]).cuda().permute(2, 0, 1)])
