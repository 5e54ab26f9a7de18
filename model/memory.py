"""Memory a FoR-Net needs at a given input size, checked before any work starts.

An export at ``--input-size 8192x16384`` used to grow past 10 GB before failing; a Jetson has
4 to 64 GB shared between CPU and GPU. The estimates here are measured on the model itself: a
forward pass on PyTorch's ``meta`` device (no memory, no arithmetic) records every activation's
size, so they follow the variant, the number of classes, the input size and the batch exactly.

* **Export** (trace, onnxsim, ONNX Runtime verification) keeps about every activation of one
  forward pass alive at once (the TorchScript tracer holds them), plus full-resolution inputs
  and outputs of both runtimes: ``base + batch * pixels * (activations per pixel + I/O per pixel)``.
  Measured on this project's CPU machines (``/usr/bin/time -v fornet export ...``), peak RSS stayed
  below this estimate for ``lite``, ``r18`` and ``r101`` at 256x512 and 512x1024.
* **Inference** (TensorRT, ONNX Runtime) reuses buffers: it needs the weights plus a few live
  activations, estimated as three times the largest one, plus the full-resolution input and output.

Both grow with the pixel count, so the largest input size that fits a budget keeps the aspect
ratio, is a multiple of the output stride and is what the errors suggest.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fornet.model.config import FoRNetConfig
from fornet.model.errors import ModelError

MIB = 1 << 20
GIB = 1 << 30
#: Libraries, the model's weights in three copies (PyTorch, ONNX, ONNX Runtime) and onnxsim's working set.
EXPORT_BASE_BYTES = 600 * MIB
#: Full-resolution tensors per pixel during an export: the image (float32 and uint8 copies), logits of both
#: runtimes and their softmax/argmax in the verification.
EXPORT_IO_BYTES_PER_PIXEL = 512
#: Input frame, labels and logits at full resolution during inference (float32).
INFERENCE_IO_BYTES_PER_PIXEL = 128
#: Unified memory of the Jetson modules (CPU and GPU share it), in GiB, for ``--target``.
TARGET_MEMORY_GIB = {
    "orin-nano-4gb": 4, "orin-nano-8gb": 8, "orin-nx-8gb": 8, "orin-nx-16gb": 16,
    "agx-orin-32gb": 32, "agx-orin-64gb": 64, "thor-128gb": 128,
}
#: Share of a Jetson's memory an engine may take (the OS, the camera stack and the application need the rest).
TARGET_USABLE_SHARE = 0.6


class MemoryLimitError(ModelError):
    """The requested input size or batch needs more memory than the machine (or target) has."""


@dataclass(frozen=True)
class ActivationProfile:
    """Per-pixel activation sizes of one configuration (bytes per input pixel, batch 1, float32).

    The export records it in the model's sidecar, so a runtime checks memory without torch.
    """

    total_per_pixel: float
    largest_per_pixel: float
    weights_bytes: int
    output_stride: int


@functools.lru_cache(maxsize=16)
def activation_profile(config: FoRNetConfig) -> ActivationProfile:
    """Measure the activations of ``config`` on the meta device (milliseconds; allocates nothing)."""
    import torch

    from fornet.model.fornet import FoRNet

    stride = config.output_stride
    h, w = 8 * stride, 16 * stride
    with torch.device("meta"):
        model = FoRNet(config).eval()
    sizes: list[int] = []

    def record(module: torch.nn.Module, inputs: object, output: object) -> None:
        for tensor in output if isinstance(output, tuple | list) else (output,):
            if isinstance(tensor, torch.Tensor):
                sizes.append(tensor.numel() * 4)

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, h, w, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    pixels = h * w
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * 4 for b in model.buffers())
    return ActivationProfile(sum(sizes) / pixels, max(sizes) / pixels, weights, stride)


def export_bytes(profile: ActivationProfile, size: tuple[int, int], batch: int = 1) -> int:
    """Peak memory of ``fornet export`` at ``size`` (H, W) and ``batch``."""
    per_pixel = profile.total_per_pixel + EXPORT_IO_BYTES_PER_PIXEL
    return int(EXPORT_BASE_BYTES + 3 * profile.weights_bytes + batch * size[0] * size[1] * per_pixel)


def inference_bytes(profile: ActivationProfile, size: tuple[int, int], batch: int = 1) -> int:
    """Memory an engine or ONNX Runtime session needs to run at ``size`` and ``batch``."""
    per_pixel = 3 * profile.largest_per_pixel + INFERENCE_IO_BYTES_PER_PIXEL
    return int(profile.weights_bytes + batch * size[0] * size[1] * per_pixel)


def available_bytes() -> int:
    """Memory this process can still use: ``MemAvailable``, capped by a cgroup limit when one is set."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit():
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, available)


def target_bytes(target: str) -> int:
    """The memory an engine may use on a named Jetson ``target`` (see :data:`TARGET_MEMORY_GIB`)."""
    if target not in TARGET_MEMORY_GIB:
        raise MemoryLimitError(f"unknown target {target!r}; choose one of {', '.join(TARGET_MEMORY_GIB)}")
    return int(TARGET_MEMORY_GIB[target] * GIB * TARGET_USABLE_SHARE)


Estimate = Callable[[ActivationProfile, tuple[int, int], int], int]


def largest_fitting_size(profile: ActivationProfile, size: tuple[int, int], batch: int, budget: int,
                         estimate: Estimate) -> tuple[int, int] | None:
    """The largest ``(H, W)`` with ``size``'s aspect ratio, a multiple of the output stride, whose
    ``estimate(profile, size, batch)`` fits ``budget``; None when not even one stride fits."""
    stride = profile.output_stride
    needed = estimate(profile, size, batch)
    scale = math.sqrt(budget / needed) if needed > 0 else 1.0
    aspect = size[1] / size[0]
    h = max(stride, int(size[0] * scale) // stride * stride)
    while True:
        w = max(stride, int(h * aspect) // stride * stride)
        if estimate(profile, (h, w), batch) <= budget:
            return h, w
        if h == stride:
            return None
        h -= stride


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def check_memory(profile: ActivationProfile, size: tuple[int, int], batch: int, *, work: str,
                 target: str | None = None) -> None:
    """Refuse ``work`` (``"export"`` or ``"inference"``) of a model with ``profile`` when it cannot fit
    here (or on ``target``).

    Raises:
        MemoryLimitError: naming what is needed, what is available and the largest input size that fits.
    """
    estimate: Estimate = export_bytes if work == "export" else inference_bytes
    here = available_bytes()
    budgets: list[tuple[str, int, Estimate]] = [(f"this machine ({_gib(here)} available)", here, estimate)]
    if target is not None:
        budgets.append((f"a {target} ({_gib(target_bytes(target))} usable)", target_bytes(target), inference_bytes))
    for where, budget, needs in budgets:
        needed = needs(profile, size, batch)
        if needed <= budget:
            continue
        fitting = largest_fitting_size(profile, size, batch, budget, needs)
        advice = (f"the largest input size that fits is {fitting[0]}x{fitting[1]} (pass --input-size "
                  f"{fitting[0]}x{fitting[1]})" if fitting else "no input size fits: use a lighter variant")
        if batch > 1:
            advice += f", or a smaller batch than {batch}"
        raise MemoryLimitError(
            f"{work} at {size[0]}x{size[1]} (batch {batch}) needs about {_gib(needed)}, more than {where}; "
            f"{advice}")
