"""What the GPU kernel harnesses (``benchmarks/*_harness.py``) share: the machine they need, and their results.

A harness compiles a CUDA source with nvcc for this GPU, runs it on device buffers that PyTorch owns,
compares every case with a reference and times it. :func:`harness_machine` checks for a CUDA build of
PyTorch, a GPU and nvcc before any work; :func:`write_harness_results` writes ``results.json`` and
``results.md`` atomically and turns the cases' exactness into the exit status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fornet.atomic import ensure_writable_dir, write_text_atomic
from fornet.errors import FornetError
from fornet.runtime.cuda.device import CudaDevice, cuda_device
from fornet.runtime.cuda.toolchain import find_nvcc


@dataclass(frozen=True)
class HarnessMachine:
    """The GPU and nvcc a harness runs with, and how its results name them."""

    device: CudaDevice
    nvcc: Path
    environment: dict[str, str]


def harness_machine(nvcc: Path | None) -> HarnessMachine:
    """This machine's GPU (through PyTorch and the driver) and nvcc (``nvcc``, else found as the runtime finds it).

    Raises:
        FornetError: no CUDA build of PyTorch or no GPU, or no nvcc; naming the fix.
    """
    import torch

    if not torch.cuda.is_available():
        raise FornetError("the harness needs a CUDA GPU and a CUDA build of PyTorch; run it on a GPU machine")
    found = nvcc or find_nvcc()
    if found is None:
        raise FornetError("nvcc not found; install the CUDA toolkit, or point $CUDACXX at nvcc")
    device = cuda_device()
    return HarnessMachine(device, found, {"gpu": f"{device.name} (sm_{device.sm})", "torch": torch.__version__,
                                          "cuda": str(torch.version.cuda), "nvcc": str(found)})


def write_harness_results(out: Path, machine: HarnessMachine, cases: Sequence[dict[str, Any]], exact: Sequence[bool],
                          markdown: str) -> int:
    """Write ``results.json`` (environment and cases) and ``results.md`` to ``out``, print the Markdown and a
    count; 0 when every case was exact, else 1."""
    folder = ensure_writable_dir(out)
    payload = {"environment": machine.environment, "cases": list(cases)}
    write_text_atomic(folder / "results.json", json.dumps(payload, indent=2) + "\n")
    write_text_atomic(folder / "results.md", markdown)
    print(markdown)
    print(f"{sum(exact)}/{len(exact)} cases exact; wrote {folder / 'results.json'}")
    return 0 if all(exact) else 1
