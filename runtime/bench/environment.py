"""What a benchmark ran on: CPU, GPU and driver, library versions, threads, load, Jetson power state.

Everything is read without importing TensorRT or pycuda (versions come from package metadata, the
GPU from the CUDA driver library). Unreadable items are recorded as ``None``; Jetson clocks and
power mode need the files of L4T and, for some, root.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fornet.runtime.cuda.device import NoGpuError, cuda_device

#: Distributions whose versions a benchmark records (first installed name of each group).
PACKAGES = {
    "fornet-deploy": ("fornet-deploy",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "pycuda": ("pycuda",),
}


@dataclass(frozen=True)
class GpuEnvironment:
    """GPU 0 and the driver's CUDA version."""

    name: str
    compute_capability: str
    driver_cuda_version: str


@dataclass(frozen=True)
class JetsonInfo:
    """A Jetson's L4T release, board, power mode and clocks (None where unreadable)."""

    l4t: str
    model: str | None
    power_mode: str | None
    #: Current clock of each GPU devfreq device, by device name.
    gpu_clock_hz: dict[str, str | None] | None
    emc_clock_hz: str | None


@dataclass(frozen=True)
class ThreadSettings:
    """The CPU threads a benchmark asked for and what ONNX Runtime and PyTorch used."""

    requested: int | None = None
    #: The count, or ``"default (one per physical core)"``.
    onnxruntime_intra_op: int | str | None = None
    torch: int | None = None


@dataclass(frozen=True)
class Environment:
    """What a benchmark ran on (see the module docstring); None where unreadable."""

    platform: str
    python: str
    cpu: str
    cpu_count: int | None
    cpus_usable: int | None
    cpu_clock_mhz: tuple[int, ...] | None
    load_average: tuple[float, ...] | None
    threads: ThreadSettings | None
    #: Installed version of each of :data:`PACKAGES`, by label.
    versions: dict[str, str | None]
    gpu: GpuEnvironment | None
    jetson: JetsonInfo | None
    #: The load average when the measurements ended.
    load_average_after: tuple[float, ...] | None = None


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None when absent)."""
    versions: dict[str, str | None] = {}
    for label, names in PACKAGES.items():
        versions[label] = None
        for name in names:
            try:
                versions[label] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    trt = sys.modules.get("tensorrt")  # JetPack's apt bindings carry no distribution metadata
    if versions["tensorrt"] is None and trt is not None:
        versions["tensorrt"] = getattr(trt, "__version__", None)
    return versions


def gpu_info() -> GpuEnvironment | None:
    """GPU 0's name and compute capability, and the driver's CUDA version; None without a GPU."""
    try:
        device = cuda_device()
    except NoGpuError:
        return None
    version = ctypes.c_int(0)
    ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version))
    return GpuEnvironment(device.name, ".".join(map(str, device.compute_capability)),
                          f"{version.value // 1000}.{version.value % 1000 // 10}")


def cpu_clocks_mhz() -> list[int]:
    """Current clock of each online CPU in MHz (cpufreq), empty when not exposed."""
    clocks = []
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        value = _read(path)
        if value and value.isdigit():
            clocks.append(int(value) // 1000)
    return clocks


def load_average() -> tuple[float, ...] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    return tuple(os.getloadavg()) if hasattr(os, "getloadavg") else None


def jetson_info() -> JetsonInfo | None:
    """L4T release, board, nvpmodel power mode and GPU/EMC clocks on a Jetson; None elsewhere."""
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    power_mode = None
    if shutil.which("nvpmodel"):
        try:
            result = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5, check=False)
            power_mode = " ".join(result.stdout.split()) or None
        except (OSError, subprocess.TimeoutExpired):
            power_mode = None
    gpu_clocks = {}
    for path in Path("/sys/class/devfreq").glob("*/cur_freq"):
        name = path.parent.name
        if any(tag in name for tag in ("gpu", "ga10b", "gv11b", "gp10b", "gb10b")):
            gpu_clocks[name] = _read(path)
    return JetsonInfo(l4t=release.splitlines()[0], model=_read("/proc/device-tree/model"), power_mode=power_mode,
                      gpu_clock_hz=gpu_clocks or None, emc_clock_hz=_read("/sys/kernel/debug/bpmp/debug/clk/emc/rate"))


def collect_environment(threads: ThreadSettings | None = None) -> Environment:
    """The full record (``threads``: the thread settings the benchmark used)."""
    return Environment(
        platform=platform.platform(),
        python=platform.python_version(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        cpu_clock_mhz=tuple(cpu_clocks_mhz()) or None,
        load_average=load_average(),
        threads=threads,
        versions=package_versions(),
        gpu=gpu_info(),
        jetson=jetson_info(),
    )
