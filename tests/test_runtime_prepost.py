"""CPU pre/post-processing against independent computations, and the CUDA kernels' per-pixel code.

The kernels cannot run here (no GPU), but ``prepost.cu`` compiled with
``-DFORNET_PREPOST_HOST_REFERENCE`` runs the very per-pixel functions the kernels call on the CPU;
those must equal the NumPy/OpenCV implementation bit for bit.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fornet.calibration.preprocess import ImageError, check_image, preprocess
from fornet.normalization import IMAGENET_MEAN, IMAGENET_STD
from fornet.runtime.cpu_prepost import (
    FrameError,
    argmax_labels,
    linear_taps,
    overlay,
    postprocess,
    preprocess_frame,
    preprocess_frames,
    resize_labels,
    upsample_scores,
    upsampled_argmax,
    upsampled_labels,
)
from fornet.runtime.cuda.toolchain import find_nvcc
from fornet.runtime.model_io import make_model_io

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "runtime" / "cuda" / "prepost.cu"
NVCC = find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found ($CUDACXX, PATH, /usr/local/cuda/bin/nvcc)")
PALETTE = np.random.default_rng(7).integers(0, 256, (19, 3), dtype=np.uint8)
#: (frame size, network size): down/up-scaling by integer and odd factors, equal, tiny.
SIZE_PAIRS = [((128, 256), (64, 128)), ((48, 80), (64, 128)), ((100, 150), (64, 128)), ((64, 128), (64, 128)),
              ((333, 517), (64, 96)), ((3, 5), (16, 32)), ((1, 1), (8, 8))]


def io_for(size: tuple[int, int], dtype: type = np.float32, raw: bool = False, channel_order: str = "RGB",
           labels: bool = False):
    from dataclasses import replace

    io = make_model_io(size, IMAGENET_MEAN, IMAGENET_STD, [f"c{i}" for i in range(19)], PALETTE)
    return replace(io, input_dtype=np.dtype(np.uint8 if raw else dtype), raw_input=raw, channel_order=channel_order,
                   labels_output=labels, output_name="labels" if labels else "logits",
                   output_dtype=np.dtype(np.uint8 if labels else np.float32))


def frame_of(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------- CPU pre

@pytest.mark.parametrize(("frame_size", "net_size"), SIZE_PAIRS[:4])
def test_pre_matches_an_independent_bilinear_resize(frame_size, net_size):
    frame = frame_of(frame_size)
    ours = preprocess_frame(frame, io_for(net_size))
    rgb = torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1)[None].float()
    resized = F.interpolate(rgb, size=net_size, mode="bilinear", align_corners=False, antialias=False)[0] / 255
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    expected = ((resized - mean) / std).numpy()
    # OpenCV rounds the resized image to uint8: at most one grey level apart.
    assert ours.shape == expected.shape and ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= 1 / 255 / min(IMAGENET_STD) + 1e-5


def test_pre_variants_cast_pad_and_reorder():
    frame = frame_of((100, 150))
    half = preprocess_frame(frame, io_for((64, 128), np.float16))
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, preprocess(frame, (64, 128), channel_order="BGR").astype(np.float16))
    batch = preprocess_frames([frame, frame_of((64, 128), 1)], io_for((64, 128)), batch=4)
    assert batch.shape == (4, 3, 64, 128)
    np.testing.assert_array_equal(batch[3], batch[1])  # padded with the last image
    raw_bgr = preprocess_frame(frame, io_for((64, 128), raw=True, channel_order="BGR"))
    raw_rgb = preprocess_frame(frame, io_for((64, 128), raw=True, channel_order="RGB"))
    assert raw_bgr.shape == (64, 128, 3) and raw_bgr.dtype == np.uint8
    np.testing.assert_array_equal(raw_rgb, raw_bgr[:, :, ::-1])


@pytest.mark.parametrize(("frame", "message"), [
    (np.zeros((4, 4, 3), np.float32), "dtype float32; pass the uint8 image"),
    (np.zeros((4, 4), np.uint8), "COLOR_GRAY2BGR"),
    (np.zeros((4, 4, 4), np.uint8), "COLOR_BGRA2BGR"),
    (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
    ([[0, 0, 0]], "is a list; pass a numpy uint8"),
])
def test_bad_frames_are_explained(frame, message):
    with pytest.raises(ImageError, match=message):
        check_image(frame, "frame")


# ------------------------------------------------------------------------------ CPU post

def test_argmax_matches_numpy_with_ties_nan_and_fp16():
    rng = np.random.default_rng(1)
    scores = np.round(rng.standard_normal((19, 40, 60)), 1).astype(np.float32)  # many ties
    scores[:, 0, :5] = np.nan
    scores[3, 1, :5] = np.nan
    scores[7, 1, :3] = np.nan
    scores[:, 2, 0] = -np.inf
    labels = argmax_labels(scores)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, scores.argmax(0))
    np.testing.assert_array_equal(argmax_labels(scores.astype(np.float16)), scores.astype(np.float16).argmax(0))
    finite = np.nan_to_num(scores, nan=0.0)
    np.testing.assert_array_equal(argmax_labels(finite), torch.from_numpy(finite).argmax(0).numpy())


@pytest.mark.parametrize(("net_size", "frame_size"), [((64, 128), (128, 256)), ((64, 128), (100, 150)),
                                                      ((64, 128), (37, 50)), ((7, 9), (64, 128)), ((5, 5), (5, 5))])
def test_label_resize_is_torch_nearest_exact(net_size, frame_size):
    labels = np.random.default_rng(2).integers(0, 19, net_size, dtype=np.uint8)
    expected = F.interpolate(torch.from_numpy(labels)[None, None].float(), size=frame_size,
                             mode="nearest-exact")[0, 0].to(torch.uint8).numpy()
    np.testing.assert_array_equal(resize_labels(labels, frame_size), expected)


def test_postprocess_logits_and_label_outputs():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((19, 64, 128)).astype(np.float32)
    torch_scores = F.interpolate(torch.from_numpy(logits)[None], size=(100, 150), mode="bilinear",
                                 align_corners=False)[0]
    top2 = torch_scores.topk(2, dim=0).values
    decisive = (top2[0] - top2[1] > 1e-4).numpy()  # away from float rounding: torch's own order of operations
    labels = postprocess(logits, (100, 150), io_for((64, 128)))
    np.testing.assert_array_equal(labels[decisive], torch_scores.argmax(0).numpy()[decisive])
    np.testing.assert_array_equal(labels, upsampled_argmax(logits, (100, 150)))
    engine_labels = rng.integers(-3, 300, (64, 128)).astype(np.int32)
    out = postprocess(engine_labels, (64, 128), io_for((64, 128), labels=True))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.where((engine_labels >= 0) & (engine_labels <= 255), engine_labels, 255))


@pytest.mark.parametrize(("net_size", "frame_size"), [((64, 128), (128, 256)), ((64, 128), (100, 150)),
                                                      ((64, 128), (37, 50)), ((7, 9), (64, 128))])
def test_upsampled_scores_are_torch_bilinear(net_size, frame_size):
    scores = np.random.default_rng(8).standard_normal((19, *net_size)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(scores)[None], size=frame_size, mode="bilinear",
                             align_corners=False)[0].numpy()
    # torch computes the source coordinate in float32, ours in float64: a few float32 steps apart.
    np.testing.assert_allclose(upsample_scores(scores, frame_size), expected, rtol=0, atol=1e-4)


def naive_cell_labels(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The fast path without the rounding margin: any cell whose four argmaxes agree takes that label."""
    labels = argmax_labels(scores)
    rows, cols = linear_taps(scores.shape[1], size[0]), linear_taps(scores.shape[2], size[1])
    agreed = (np.minimum.reduce([labels, np.roll(labels, -1, 0), np.roll(labels, -1, 1)]) ==
              np.maximum.reduce([labels, np.roll(labels, -1, 0), np.roll(labels, -1, 1)]))
    cell = np.where(agreed, labels, 255)[rows.low][:, cols.low]
    full = upsampled_argmax(scores, size)
    return np.where((cell == 255) | (rows.low[:, None] >= scores.shape[1] - 1) |
                    (cols.low[None, :] >= scores.shape[2] - 1), full, cell)


def score_map(kind: str, rng: np.random.Generator, classes: int, size: tuple[int, int]) -> np.ndarray:
    """Adversarial and ordinary score maps for the fast post path."""
    h, w = size
    if kind == "random":
        return rng.standard_normal((classes, h, w)).astype(np.float32)
    if kind == "smooth":
        low = rng.standard_normal((classes, 3, 4)).astype(np.float32) * 4
        return upsample_scores(low, size)
    if kind == "ties":  # whole numbers: exact ties between classes everywhere
        return rng.integers(-2, 3, (classes, h, w)).astype(np.float32)
    if kind == "near-ties":  # a common argmax one float32 step above a lower class: rounding decides
        scores = np.full((classes, h, w), -1.0, np.float32)
        scores[1] = np.float32(rng.uniform(0.5, 8)) * rng.uniform(0.999, 1.001, (h, w)).astype(np.float32)
        scores[0] = np.nextafter(scores[1], np.float32(-np.inf))
        return scores
    if kind == "one-pixel-classes":
        scores = rng.standard_normal((classes, 1, 1)).astype(np.float32) + np.zeros((classes, h, w), np.float32)
        for c in range(classes):
            scores[c, rng.integers(h), rng.integers(w)] = 10 + c
        return scores
    if kind == "special-values":
        scores = rng.standard_normal((classes, h, w)).astype(np.float32)
        flat = scores.reshape(-1)
        picks = rng.integers(0, flat.size, (6, max(1, flat.size // 50)))
        for values, pick in zip(([np.nan], [np.inf], [-np.inf], [3e38, -3e38], [1e-41, -1e-44], [0.0, -0.0]),
                                picks, strict=False):
            flat[pick] = rng.choice(np.asarray(values, np.float32), pick.size)
        return scores
    raise AssertionError(kind)


MAP_KINDS = ["random", "smooth", "ties", "near-ties", "one-pixel-classes", "special-values"]


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_fast_post_equals_the_full_path_bit_for_bit(kind):
    """Many seeds, sizes up, down, odd and tiny, float32 and float16 scores."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        net = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        frame = net if seed % 8 == 0 else (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        scores = score_map(kind, rng, int(rng.integers(2, 20)), net)
        with np.errstate(over="ignore"):  # 3e38 is beyond float16: inf
            half = scores.astype(np.float16)
        for source in (scores, half):
            full = upsampled_argmax(source, frame)
            # by default, and with the boundary path forced however many pixels it interpolates
            for labels in (upsampled_labels(source, frame), upsampled_labels(source, frame, full_path_above=1.0)):
                np.testing.assert_array_equal(labels, full, err_msg=f"{kind} seed {seed} {net} -> {frame} "
                                                                    f"{source.dtype}")


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_the_certain_pass_in_row_bands_on_threads_equals_one_pass(kind, monkeypatch):
    """Bands of 2 rows on 3 threads (every band edge a neighbourhood edge) give the one-pass labels, and the
    fast path, its frame rows in bands too, still equals the full path."""
    from fornet.runtime import cpu_prepost

    # Row 1's near tie is certain by its own magnitude, not by row 2's (4x larger): the band above row 2
    # must see row 2 to leave row 1 open, as the one pass does.
    edge = np.zeros((2, 4, 3), np.float32)
    edge[0, 1], edge[1, 1] = 1.0, np.float32(1.0 - 1.5 * 2.0**-20)
    edge[0, 2] = 4.0
    assert cpu_prepost.certain_cells(edge)[1].tolist() == [255, 255, 255]
    for seed in range(6):
        rng = np.random.default_rng(seed)
        net = (int(rng.integers(5, 14)), int(rng.integers(2, 12)))
        scores = edge if seed == 0 else score_map(kind, rng, int(rng.integers(2, 20)), net)
        net = scores.shape[1:]
        one_pass = cpu_prepost.certain_cells(scores)
        with monkeypatch.context() as patched:
            patched.setattr(cpu_prepost, "_POST_THREADS", 3)
            patched.setattr(cpu_prepost, "_MIN_BAND_ROWS", 2)
            np.testing.assert_array_equal(cpu_prepost.certain_cells(scores), one_pass, err_msg=f"{kind} {seed}")
            frame = (int(rng.integers(net[0], 40)), int(rng.integers(1, 40)))
            for full_path_above in (1.0, 0.0):  # every band interpolating pixel by pixel, or resizing itself
                np.testing.assert_array_equal(upsampled_labels(scores, frame, full_path_above=full_path_above),
                                              upsampled_argmax(scores, frame), err_msg=f"{kind} seed {seed}")


def test_near_ties_defeat_the_fast_path_without_its_margin():
    """The near-tie maps are adversarial: cells whose four argmaxes agree interpolate to another label."""
    for seed in range(5):
        scores = score_map("near-ties", np.random.default_rng(seed), 3, (6, 7))
        full = upsampled_argmax(scores, (23, 31))
        assert (naive_cell_labels(scores, (23, 31)) != full).any()
        np.testing.assert_array_equal(upsampled_labels(scores, (23, 31), full_path_above=1.0), full)


def test_a_class_found_only_at_frame_size():
    """Class 2 is never the argmax of a network pixel, yet wins between the two where 0 and 1 split."""
    scores = np.zeros((3, 2, 2), np.float32)
    scores[0] = [[4, -4], [4, -4]]
    scores[1] = [[-4, 4], [-4, 4]]
    scores[2] = 1.5
    assert 2 not in argmax_labels(scores)
    labels = upsampled_labels(scores, (8, 8))
    assert 2 in labels
    np.testing.assert_array_equal(labels, upsampled_argmax(scores, (8, 8)))


def test_fast_post_takes_256_classes_and_refuses_bad_shapes():
    scores = np.random.default_rng(6).standard_normal((256, 5, 6)).astype(np.float32)
    scores[255, 2:, :] += 10  # label 255 is a real class here
    labels = upsampled_labels(scores, (11, 13))
    assert 255 in labels
    np.testing.assert_array_equal(labels, upsampled_argmax(scores, (11, 13)))
    for bad in (np.zeros((4, 4), np.float32), np.zeros((257, 2, 2), np.float32)):
        with pytest.raises(FrameError, match="C x H x W class scores"):
            upsampled_labels(bad, (8, 8))


def test_overlay_blends_and_keeps_unknown_labels():
    frame = frame_of((20, 30))
    labels = np.random.default_rng(4).integers(0, 25, (20, 30), dtype=np.uint8)  # 19..24 have no colour
    coloured = labels < 19
    np.testing.assert_array_equal(overlay(frame, labels, PALETTE, 0.0), frame)
    full = overlay(frame, labels, PALETTE, 1.0)
    np.testing.assert_array_equal(full[coloured], PALETTE[labels[coloured]])
    np.testing.assert_array_equal(full[~coloured], frame[~coloured])
    half = overlay(frame, labels, PALETTE, 0.3).astype(float)
    expected = 0.7 * frame + 0.3 * PALETTE[np.minimum(labels, 18)]
    assert np.abs(half - expected)[coloured].max() <= 1.0
    with pytest.raises(FrameError, match=r"alpha must be in \[0, 1\]"):
        overlay(frame, labels, PALETTE, 1.5)
    with pytest.raises(FrameError, match="the frame's size"):
        overlay(frame, labels[:10], PALETTE, 0.5)


# ----------------------------------------------------------------------------- kernels

def nvcc(*args: str) -> None:
    assert NVCC is not None
    result = subprocess.run([str(NVCC), "-std=c++17", "--Werror", "all-warnings", *args], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr


@needs_nvcc
@pytest.mark.parametrize("arch", ["87", "90"])
def test_kernels_compile_without_warnings(arch, tmp_path):
    nvcc("-c", "-O3", f"-arch=sm_{arch}", str(KERNELS), "-o", str(tmp_path / "prepost.o"))


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc not found ($CUDACXX, PATH, /usr/local/cuda/bin/nvcc)")
    library = tmp_path_factory.mktemp("prepost") / "libprepost_host.so"
    # Host code must not fuse multiply-adds either (aarch64 compilers do by default), like the device code.
    nvcc("-shared", "-Xcompiler", "-fPIC,-ffp-contract=off", "-O2", "-arch=sm_87", "-DFORNET_PREPOST_HOST_REFERENCE",
         str(KERNELS), "-o", str(library))
    return ctypes.CDLL(str(library))


def pointer(array: np.ndarray | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if array is None else array.ctypes.data)


def kernel_pre(lib, frame: np.ndarray, io) -> np.ndarray:
    h, w = io.input_size
    out_type = 2 if io.raw_input else (1 if io.input_dtype == np.float16 else 0)
    out = np.empty((h, w, 3) if io.raw_input else (3, h, w), dtype=io.input_dtype)
    mean = np.asarray(io.mean, np.float32)
    std = np.asarray(io.std, np.float32)
    status = lib.fornet_pre_host(pointer(frame), frame.shape[0], frame.shape[1], frame.strides[0], pointer(out), h, w,
                                 out_type, int(io.channel_order == "RGB"), pointer(mean), pointer(std))
    assert status == 0
    return out


def kernel_post(lib, source: np.ndarray, frame: np.ndarray, alpha256: int | None) -> tuple[np.ndarray, np.ndarray]:
    source_type = {np.float32: 0, np.float16: 1, np.uint8: 2, np.int32: 3}[source.dtype.type]
    classes = source.shape[0] if source.ndim == 3 else 0
    h, w = frame.shape[:2]
    labels = np.full((h, w), 77, np.uint8)
    drawn = np.zeros_like(frame)
    palette = np.ascontiguousarray(PALETTE)
    status = lib.fornet_post_host(pointer(source), source_type, classes, source.shape[-2], source.shape[-1],
                                  pointer(labels), h, w, pointer(frame), frame.strides[0],
                                  pointer(drawn if alpha256 is not None else None), pointer(palette), len(palette),
                                  alpha256 or 0)
    assert status == 0
    return labels, drawn


@pytest.mark.parametrize(("frame_size", "net_size"), SIZE_PAIRS)
def test_kernel_pre_equals_cpu_pre_bit_for_bit(host_kernels, frame_size, net_size):
    frame = frame_of(frame_size, seed=frame_size[0])
    for io in (io_for(net_size), io_for(net_size, np.float16), io_for(net_size, raw=True, channel_order="BGR"),
               io_for(net_size, raw=True, channel_order="RGB")):
        expected = preprocess_frame(frame, io)
        got = kernel_pre(host_kernels, frame, io)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), err_msg=str(io.input_dtype))


@pytest.mark.parametrize(("net_size", "frame_size"), [((64, 128), (128, 256)), ((64, 128), (100, 150)),
                                                      ((64, 128), (30, 50)), ((16, 16), (16, 16))])
def test_kernel_post_equals_cpu_post_exactly(host_kernels, net_size, frame_size):
    rng = np.random.default_rng(5)
    frame = frame_of(frame_size, seed=9)
    scores = np.round(rng.standard_normal((19, *net_size)), 1).astype(np.float32)
    scores[:, 0, :4] = np.nan
    scores[5, 1, :4] = np.nan
    label_maps = rng.integers(-2, 40, net_size)
    for source, io in ((scores, io_for(net_size)), (scores.astype(np.float16), io_for(net_size)),
                       (label_maps.astype(np.uint8), io_for(net_size, labels=True)),
                       (label_maps.astype(np.int32), io_for(net_size, labels=True))):
        expected = postprocess(source, frame_size, io)
        labels, drawn = kernel_post(host_kernels, source, frame, 77)
        np.testing.assert_array_equal(labels, expected, err_msg=str(source.dtype))
        np.testing.assert_array_equal(drawn, overlay(frame, expected, PALETTE, 77 / 256))
    labels, drawn = kernel_post(host_kernels, scores, frame, None)
    assert not drawn.any()  # no overlay buffer, nothing written


@pytest.mark.parametrize("kind", MAP_KINDS)
def test_kernel_fast_post_equals_the_full_path_bit_for_bit(host_kernels, kind):
    """The kernels' two passes (certain network pixels, then frame pixels) on the adversarial maps."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        net = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
        frame_size = net if seed % 8 == 0 else (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        scores = score_map(kind, rng, int(rng.integers(2, 20)), net)
        with np.errstate(over="ignore"):
            half = scores.astype(np.float16)
        for source in (scores, half):
            labels, _ = kernel_post(host_kernels, source, frame_of(frame_size), None)
            np.testing.assert_array_equal(labels, upsampled_argmax(source, frame_size),
                                          err_msg=f"{kind} seed {seed} {net} -> {frame_size} {source.dtype}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_gpu_fast_post_equals_the_full_path_bit_for_bit(dtype):
    """The kernels themselves, through GpuPrePost and pycuda, on every adversarial map kind."""
    from dataclasses import replace

    from fornet.runtime.cuda.context import CudaContext
    from fornet.runtime.cuda.prepost import GpuPrePost

    context = CudaContext(0)
    mismatches = []

    def run() -> None:
        cuda = context.driver
        stream = cuda.Stream()
        for kind in MAP_KINDS:
            for seed in range(8):
                rng = np.random.default_rng(seed)
                net = (int(rng.integers(2, 40)), int(rng.integers(2, 40)))
                frame_size = net if seed == 0 else (int(rng.integers(1, 120)), int(rng.integers(1, 120)))
                io = replace(io_for(net), output_dtype=np.dtype(dtype))
                with np.errstate(over="ignore"):
                    scores = np.ascontiguousarray(score_map(kind, rng, 19, net).astype(dtype))
                kernels = GpuPrePost(cuda, io)
                network_input = cuda.mem_alloc(int(np.prod(io.input_shape(1))) * 4)
                device_scores = cuda.to_device(scores)
                try:
                    kernels.preprocess(0, frame_of(frame_size), int(network_input), stream)
                    kernels.postprocess(0, int(device_scores), net, frame_size, None, stream)
                    stream.synchronize()
                    labels, _ = kernels.results(0, frame_size, False)
                finally:
                    kernels.free()
                    network_input.free()
                    device_scores.free()
                if not np.array_equal(labels, upsampled_argmax(scores, frame_size)):
                    mismatches.append(f"{kind} seed {seed} {net} -> {frame_size}")

    context.close(run)
    assert not mismatches


# ------------------------------------------------------------------------- GPU harness

def load_harness():
    """benchmarks/ is not a package: import the script by path (registered, as dataclasses need)."""
    import importlib.util
    import sys

    name = "prepost_kernel_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "prepost_kernel_harness.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_harness_needs_pycuda_and_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run the harness itself")
    assert load_harness().main(["--out", str(tmp_path / "results"), "--frames", "64x128"]) == 2
    assert "pycuda" in capsys.readouterr().err or "GPU" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_harness_releases_the_context_after_its_block_and_writes_results(tmp_path, monkeypatch):
    """The harness's own context handling, on the fake pycuda (tests/helpers/fake_cuda.py): it used to call
    release() inside ``with context:``, which raises, and so never wrote its results on a GPU machine.
    The cases themselves need a GPU; here each returns a passing row."""
    import sys

    from tests.helpers.fake_cuda import CudaWorld, make_fake_pycuda

    world = CudaWorld()
    package, driver = make_fake_pycuda(world)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    harness = load_harness()

    def case(stage):
        def run(cuda, stream, frame, network, name, *rest):
            assert world.current() is not None, "a case ran without the context current"
            return harness.CaseResult(stage, name, frame.shape[:2], network, True, True, 0.0, 0, 0.1, 0.1, 1.0)
        return run

    monkeypatch.setattr(harness, "run_pre", case("pre"))
    monkeypatch.setattr(harness, "run_post", case("post"))
    assert harness.main(["--out", str(tmp_path / "results"), "--frames", "64x128", "--pre", "fp32",
                         "--post", "scores-fp32"]) == 0
    assert [row["stage"] for row in json.loads((tmp_path / "results" / "results.json").read_text())["cases"]] == [
        "pre", "post"]
    assert world.stack() == [] and world.retained == 0 and world.dead_context_cleanups == []


def test_harness_rejects_unknown_cases(tmp_path, capsys):
    assert load_harness().main(["--out", str(tmp_path), "--pre", "fp64"]) == 2
    assert "--pre takes fp32, fp16, raw-bgr; unknown: fp64" in capsys.readouterr().err
