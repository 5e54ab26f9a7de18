"""Helpers of the fault-injection tests: run a command killed at a named point, compare folders."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from fornet.faults import FAULT_ENV
from fornet.hashing import sha256_file
from fornet.runtime.model_io import ModelSidecar, check_sidecar_binding


def run_fornet(*args: str, fault: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m fornet ARGS`` in a subprocess, killed at ``fault`` (a ``FORNET_FAULT_POINT`` value) if given."""
    env = {key: value for key, value in os.environ.items() if key != FAULT_ENV}
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "fornet", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def killed(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether the process died of SIGKILL (the fault point was reached)."""
    return result.returncode == -signal.SIGKILL


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file directly in ``folder`` (hidden ones included)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def visible(folder: Path) -> dict[str, str]:
    """:func:`snapshot` without hidden entries (staging folders, journal, temporaries)."""
    return {name: digest for name, digest in snapshot(folder).items() if not name.startswith(".")}


def check_export(folder: Path, checkpoint: Path) -> list[str]:
    """Assert that ``folder`` holds one consistent export of ``checkpoint``; return its ONNX file names."""
    models = sorted(p.name for p in folder.glob("*.onnx"))
    assert models, f"no ONNX file in {folder}"
    for name in models:
        sidecar_path = ModelSidecar.path_for(folder / name)
        sidecar = ModelSidecar.load(sidecar_path)
        check_sidecar_binding(sidecar, sidecar_path, folder / name)
        assert sidecar.checkpoint.sha256 == sha256_file(checkpoint), f"{name} is not an export of {checkpoint}"
    return models
