"""The CUDA compiler this machine has (for the plugin build and the run-time pre/post kernels)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_DEFAULT_NVCC = Path("/usr/local/cuda/bin/nvcc")


def find_nvcc() -> Path | None:
    """``$CUDACXX``, ``nvcc`` on ``PATH`` or ``/usr/local/cuda/bin/nvcc``, whichever exists first."""
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc"), str(_DEFAULT_NVCC)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
