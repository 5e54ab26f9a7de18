"""``gst-launch-1.0`` pipelines with the ``fornetseg`` element and the embedding examples, each in a process of
its own under the element's environment (``make gst-env``: Debian's /usr/bin/python3 with its GStreamer).

GStreamer never starts in the pytest process (an ONNX export there crashes after it did): the pipelines
write raw frames and label maps to files, read here with numpy."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fornet.runtime.video.gst_element import PLUGIN_PATH
from fornet.runtime.video.gst_element.frames import labels_layout, unpack_labels

REPO = Path(__file__).resolve().parents[2]
#: The element's environment (setup/gst-env.sh).
GST_ENV = Path(os.environ.get("FORNET_GST_ENV", REPO / ".venv-gst"))
#: One ``fornetseg-latency`` element message as ``gst-launch-1.0 -m`` prints it.
_LATENCY = re.compile(r"fornetseg-latency, frame=\(guint64\)(\d+), batch=\(int\)(\d+), "
                      r"inference-ms=\(double\)([0-9.e+-]+), latency-ms=\(double\)([0-9.e+-]+)")

NEEDS_GST_ENV = pytest.mark.skipif(
    not ((GST_ENV / ".installed").is_file() and shutil.which("gst-launch-1.0")),
    reason="needs GStreamer with its Python plugin loader and the element's environment: make system-deps gst-env")


@dataclass(frozen=True)
class Latency:
    """One ``fornetseg-latency`` message."""

    frame: int
    batch: int
    inference_ms: float
    latency_ms: float


@dataclass(frozen=True)
class Launched:
    """A finished ``gst-launch-1.0``: exit status, its output (stdout and stderr) and the latency messages."""

    returncode: int
    output: str

    @property
    def latencies(self) -> list[Latency]:
        return [Latency(int(f), int(b), float(i), float(lat)) for f, b, i, lat in _LATENCY.findall(self.output)]


def element_env(tmp: Path) -> dict[str, str]:
    """The environment a GStreamer process needs for ``fornetseg``: the element's venv activated (its Python is
    the one GStreamer's plugin loader embeds), ``GST_PLUGIN_PATH``, and a registry of its own."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(GST_ENV)
    env["PATH"] = f"{GST_ENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["GST_PLUGIN_PATH"] = str(PLUGIN_PATH)
    env["GST_REGISTRY"] = str(tmp / "gst-registry.bin")
    return env


def gst_launch(pipeline: str, tmp: Path, timeout_s: float = 180) -> Launched:
    """Run ``gst-launch-1.0 -m -e PIPELINE`` (the pipeline's words split as a shell would) in ``tmp``; a crash
    ends it at once (``--gst-disable-segtrap``) instead of waiting for a debugger."""
    command = ["gst-launch-1.0", "--gst-disable-segtrap", "-m", "-e", *shlex.split(pipeline)]
    done = subprocess.run(command, cwd=tmp, env=element_env(tmp),
                          capture_output=True, text=True, timeout=timeout_s)
    return Launched(done.returncode, done.stdout + done.stderr)


def run_example(script: str, args: list[str], tmp: Path, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``examples/SCRIPT ARGS`` with the Python of the element's environment."""
    return subprocess.run([str(GST_ENV / "bin" / "python"), str(REPO / "examples" / script), *args], cwd=tmp,
                          env=element_env(tmp), capture_output=True, text=True, timeout=timeout_s)


def read_frames(path: Path, height: int, width: int, channels: int = 3) -> np.ndarray:
    """Raw packed frames (``N x H x W x C`` uint8) a ``filesink`` wrote (rows of 3-byte pixels padded to 4)."""
    stride = (width * channels + 3) // 4 * 4
    rows = np.fromfile(path, dtype=np.uint8).reshape(-1, height, stride)
    return rows[:, :, :width * channels].reshape(-1, height, width, channels)


def read_labels(path: Path, height: int, width: int) -> list[np.ndarray]:
    """The GRAY8 label maps the ``labels`` pad's ``filesink`` wrote."""
    data = path.read_bytes()
    _, size = labels_layout(width, height)
    return [unpack_labels(data[start:start + size], width, height) for start in range(0, len(data), size)]
