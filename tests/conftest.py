"""Shared fixtures and the skip rules for the ``gpu``, ``tensorrt`` and ``rtsp_server`` markers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runtime_models import LiteExport, export_lite_models
from tests.helpers.video import RtspTestServer, rtsp_server_available


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
    no_trt = pytest.mark.skip(
        reason="needs TensorRT's Python bindings (pip install tensorrt, or JetPack's python3-libnvinfer)"
    )
    has_gpu = _cuda_available()
    from fornet.runtime.tensorrt.env import tensorrt_available

    has_trt = tensorrt_available()
    # Markers, not ``item.keywords``: keywords hold every node name too (a checkout in a folder named
    # ``gpu`` would match every test).
    needs_rtsp = [item for item in items if item.get_closest_marker("rtsp_server")]
    if needs_rtsp and not rtsp_server_available():
        no_rtsp = pytest.mark.skip(reason="needs the GStreamer RTSP server for /usr/bin/python3: run `make "
                                          "system-deps` (or setup/system-packages.sh)")
        for item in needs_rtsp:
            item.add_marker(no_rtsp)
    for item in items:
        if item.get_closest_marker("gpu") and not has_gpu:
            item.add_marker(no_gpu)
        if item.get_closest_marker("tensorrt") and not has_trt:
            item.add_marker(no_trt)


_FAULT_CASES = {"tried": 0, "passed": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the ``fault``-marked cases: one per test that ran its body (or failed in set-up); skips do not count."""
    if "fault" not in report.keywords or report.skipped:
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        _FAULT_CASES["tried"] += 1
        _FAULT_CASES["passed"] += int(report.passed)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault-injection count (docs/reliability.md quotes it)."""
    if _FAULT_CASES["tried"]:
        terminalreporter.write_line(f"fault cases tried: {_FAULT_CASES['tried']}, passed: {_FAULT_CASES['passed']}")


@pytest.fixture(scope="session")
def lite(tmp_path_factory: pytest.TempPathFactory) -> LiteExport:
    """A seeded lite checkpoint and its ONNX exports (plain FP32 + FP16, raw-input labels-output)."""
    return export_lite_models(tmp_path_factory.mktemp("lite-export"))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated Cityscapes-format data set (6 train, 4 val images of 128x256)."""
    from fornet.calibration.synth import generate_synthetic_cityscapes

    root = tmp_path_factory.mktemp("cityscapes")
    return generate_synthetic_cityscapes(root, train=6, val=4, size=(128, 256), seed=0, progress=False)


@pytest.fixture
def rtsp_server() -> Iterator[RtspTestServer]:
    """The loopback RTSP test server (a live H.264 pattern at ``rtsp://127.0.0.1:PORT/cam``), stopped after the test."""
    running = RtspTestServer()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]
