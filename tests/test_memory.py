"""Memory estimates and the limits checked before an export or a model load starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fornet.model import memory
from fornet.model.config import VARIANTS
from fornet.model.memory import (
    GIB,
    MemoryLimitError,
    activation_profile,
    check_memory,
    export_bytes,
    inference_bytes,
    largest_fitting_size,
)

LITE, R101 = activation_profile(VARIANTS["lite"]), activation_profile(VARIANTS["r101"])


def test_estimates_follow_pixels_batch_and_variant() -> None:
    small, large = export_bytes(LITE, (256, 512)), export_bytes(LITE, (512, 1024))
    assert large > small and export_bytes(LITE, (256, 512), batch=2) > small
    assert export_bytes(R101, (256, 512)) > 5 * (small - memory.EXPORT_BASE_BYTES)
    assert inference_bytes(LITE, (1024, 2048)) < export_bytes(LITE, (1024, 2048))


@pytest.mark.parametrize("size", [(8192, 16384), (99999, 99999), (1024, 2048)])
def test_refusal_suggests_a_valid_size_that_fits(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * GIB)
    with pytest.raises(MemoryLimitError, match=r"needs about .* GiB, more than this machine \(2.0 GiB available\)"
                                               r"; the largest input size that fits is (\d+)x(\d+)") as info:
        check_memory(LITE, size, 1, work="export")
    h, w = (int(v) for v in str(info.value).rsplit("--input-size ", 1)[1].rstrip(")").split("x"))
    assert h % LITE.output_stride == 0 and w % LITE.output_stride == 0
    assert h <= size[0] and w <= size[1]
    check_memory(LITE, (h, w), 1, work="export")  # the suggestion itself passes


def test_nothing_fits_and_batches_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * (1 << 20))
    with pytest.raises(MemoryLimitError, match="no input size fits: use a lighter variant, or a smaller batch than 4"):
        check_memory(R101, (1024, 2048), 4, work="export")
    assert largest_fitting_size(LITE, (64, 64), 1, 0, export_bytes) is None


def test_named_jetson_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 50)
    check_memory(LITE, (1024, 2048), 1, work="export", target="orin-nano-4gb")
    with pytest.raises(MemoryLimitError, match=r"more than a orin-nano-4gb \(2.4 GiB usable\)"):
        check_memory(R101, (1024, 2048), 16, work="export", target="orin-nano-4gb")
    with pytest.raises(MemoryLimitError, match="unknown target 'orin-pico'; choose one of orin-nano-4gb"):
        check_memory(LITE, (64, 64), 1, work="export", target="orin-pico")


def test_export_cli_refuses_before_any_work(tmp_path: Path, lite) -> None:
    out = tmp_path / "export"
    result = subprocess.run([str(Path(sys.executable).with_name("fornet-export")), "--ckpt", str(lite.checkpoint),
                             "--input-size", "8192x16384", "--out", str(out)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 2
    assert "error: export at 8192x16384 (batch 1) needs about" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


@pytest.mark.slow
def test_the_export_estimate_bounds_a_real_export(tmp_path: Path, lite) -> None:
    """Peak memory of a real export (measured by the kernel) stays below the estimate."""
    script = (
        "from pathlib import Path\n"
        "from fornet.export import ExportOptions, export_onnx\n"
        f"export_onnx({str(lite.checkpoint)!r}, {str(tmp_path)!r}, ExportOptions(input_size=(256, 512), "
        "progress=False))\n"
        "print(next(line for line in Path('/proc/self/status').read_text().splitlines() if line.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, timeout=600, capture_output=True, text=True)
    # VmHWM: the kernel's peak resident set of this process image (getrusage's ru_maxrss would carry the
    # parent's peak over fork and exec)
    peak = int(done.stdout.split()[-2]) * 1024
    assert peak < export_bytes(LITE, (256, 512))
