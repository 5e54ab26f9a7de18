"""A real Triton Inference Server on 127.0.0.1 serving the lite export: parity, concurrency, bad input, bad set-ups."""

from __future__ import annotations

import io
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fornet.cli import bench
from fornet.runtime.model_spec import ModelSpec
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving import empty_input_check
from fornet.runtime.serving.client import SegmentationClient
from fornet.runtime.serving.empty_input_check import PROXY_MODULE, empty_input_message
from fornet.runtime.serving.errors import RequestRejected, ServingError
from fornet.runtime.serving.launcher import ServerProcess, server_environment
from fornet.runtime.serving.load import run_load
from fornet.runtime.serving.metrics import parse_batching_stats
from fornet.runtime.serving.options import ServerOptions
from fornet.runtime.serving.ports import require_free_ports
from fornet.runtime.serving.proxy_files import with_empty_input_check
from fornet.runtime.serving.triton_log import GPU_PROBE_LINE, NOTICE, GpuProbeFilter
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import (
    OVERLAY_ALPHA,
    RunningServer,
    frames,
    post_zero_size_frame,
    server_options,
    triton_server,
)

__all__ = ["triton_server"]


@pytest.fixture(scope="module")
def local(triton_server: RunningServer) -> Segmenter:
    with Segmenter(triton_server.model, device="cpu", threads=1) as segmenter:
        yield segmenter


@pytest.mark.parametrize("size", [INPUT_SIZE, (100, 150)])
def test_served_labels_equal_local_segmenter(triton_server: RunningServer, local: Segmenter,
                                             size: tuple[int, int]) -> None:
    with SegmentationClient(triton_server.options.http_url) as client:
        for frame in frames(3, size, seed=1):
            assert np.array_equal(client.segment(frame), local(frame))


def test_overlay_output_equals_local_overlay(triton_server: RunningServer, local: Segmenter) -> None:
    frame = frames(1, (80, 120), seed=11)[0]
    with SegmentationClient(triton_server.options.http_url) as client:
        labels, overlay = client.segment_with_overlay(frame)
    expected = local.segment(frame, overlay_alpha=OVERLAY_ALPHA)
    assert np.array_equal(labels, expected.labels) and np.array_equal(overlay, expected.overlay)


def test_grpc_answers_the_same(triton_server: RunningServer, local: Segmenter) -> None:
    url = f"grpc://{triton_server.options.host}:{triton_server.options.grpc_port}"
    frame = frames(1, INPUT_SIZE, seed=2)[0]
    with SegmentationClient(url) as client:
        assert np.array_equal(client.segment(frame), local(frame))


def test_eight_concurrent_clients_get_their_own_answers(triton_server: RunningServer, local: Segmenter) -> None:
    inputs = frames(16, INPUT_SIZE, seed=3)
    expected = [local(frame) for frame in inputs]
    result = run_load(triton_server.options.http_url, inputs, expected, concurrency=8, requests=50,
                      metrics_url=triton_server.options.metrics_url)
    assert result.sent == 400
    assert result.answered + result.refused == 400, result.summary()
    assert result.mismatched == 0 and result.failed == 0, result.summary()
    assert all("queue" in message for message in result.messages), result.messages
    assert result.batching is not None and result.batching.inference_count >= result.answered
    with SegmentationClient(triton_server.options.http_url) as client:
        assert client.is_ready()


@pytest.mark.parametrize(("batch", "what"), [
    (np.zeros((1, 16, 16, 3), np.float32), "data-type"),
    (np.zeros((1, 16, 16, 4), np.uint8), "shape"),
    (np.zeros((1, 16, 16), np.uint8), "shape"),
])
def test_malformed_requests_get_an_error_not_a_crash(triton_server: RunningServer, batch: np.ndarray,
                                                     what: str) -> None:
    with SegmentationClient(triton_server.options.http_url) as client:
        with pytest.raises(RequestRejected, match=what):
            client.infer(batch)
        assert client.is_ready()
        assert client.segment(frames(1, INPUT_SIZE, seed=4)[0]).shape == INPUT_SIZE


@pytest.mark.fault
@pytest.mark.parametrize("shape", [(1, 0, 0, 3), (0, 16, 16, 3)])
def test_client_refuses_an_empty_frame_before_sending_it(triton_server: RunningServer, shape: tuple[int, ...]) -> None:
    with SegmentationClient(triton_server.options.http_url) as client:
        with pytest.raises(ServingError, match=r"frames is empty .*N, H and W at least 1") as info:
            client.infer(np.zeros(shape, np.uint8))
        assert not isinstance(info.value, RequestRejected)
        assert client.segment(frames(1, INPUT_SIZE, seed=4)[0]).shape == INPUT_SIZE


@pytest.mark.fault
@pytest.mark.parametrize("shape", [(1, 0, 0, 3), (1, 16, 0, 3), (1, 0, 16, 3)])
def test_empty_frame_over_plain_http_gets_a_400_naming_it_and_the_server_stays_up(triton_server: RunningServer,
                                                                                 shape: tuple[int, ...]) -> None:
    """Before the check, PyTriton's proxy model failed on it and answered 500 with its Python traceback."""
    status, answer = post_zero_size_frame(triton_server.options.http_url, shape)
    assert status == 400, answer
    assert f"input 'frames' is empty (shape {list(shape)})" in answer and "Traceback" not in answer, answer
    with SegmentationClient(triton_server.options.http_url) as client:
        assert client.is_ready()
        assert client.segment(frames(1, INPUT_SIZE, seed=4)[0]).shape == INPUT_SIZE


@pytest.mark.fault
def test_empty_frame_over_plain_grpc_gets_invalid_argument_naming_it(triton_server: RunningServer) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    tensor = grpcclient.InferInput("frames", [1, 0, 0, 3], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, 0, 0, 3), np.uint8))
    client = grpcclient.InferenceServerClient(f"{triton_server.options.host}:{triton_server.options.grpc_port}")
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer("fornet", [tensor])
    finally:
        client.close()
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT", info.value
    assert "input 'frames' is empty (shape [1, 0, 0, 3])" in info.value.message()
    assert "Traceback" not in info.value.message()


def test_proxy_files_put_the_empty_input_check_in_front_of_pytritons_model() -> None:
    pytriton = {"file:1/model.py": b"pytriton model", "file:1/data.py": b"pytriton data"}
    files = with_empty_input_check(pytriton)
    assert files["file:1/data.py"] == b"pytriton data"
    assert files[f"file:1/{PROXY_MODULE}.py"] == b"pytriton model"
    assert files["file:1/model.py"] == Path(empty_input_check.__file__).read_bytes()
    with pytest.raises(ServingError, match=r"setup/triton-env\.sh"):
        with_empty_input_check({"file:1/data.py": b"pytriton data"})


def test_empty_input_message_names_the_input_and_shape_and_passes_full_ones() -> None:
    assert empty_input_message("frames", [1, 16, 16, 3]) is None
    assert empty_input_message("frames", [2, 0, 16, 3]) == ("input 'frames' is empty (shape [2, 0, 16, 3]): send "
                                                            "[N, H, W, 3] uint8 BGR frames with N, H and W at least 1")


def test_health_and_prometheus_metrics(triton_server: RunningServer) -> None:
    with urllib.request.urlopen(f"{triton_server.options.http_url}/v2/health/live", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(triton_server.options.metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    assert parse_batching_stats(text).inference_count > 0


def test_cpu_server_output_has_no_gpu_probe_errors(triton_server: RunningServer) -> None:
    """``fornet serve --device cpu`` on a machine without a usable GPU: none of Triton's CUDA/NVML errors."""
    text = triton_server.log.read_text()
    assert "successfully loaded 'fornet'" in text
    assert [line for line in text.splitlines() if GPU_PROBE_LINE.search(line)] == []


def test_gpu_probe_filter_judges_whole_lines_and_says_once_what_it_hid() -> None:
    out = io.StringIO()
    hidden = GpuProbeFilter(out)
    pieces = ['E1205 server.cc:241] "CudaDriver', 'Helper has not been initialized."\nI1205 ready\nError: Failed to ',
              "initialize NVML\n", "serving fornet", "\n", "last words"]
    for piece in pieces:
        hidden.write(piece)
    hidden.finish()
    assert out.getvalue() == f"{NOTICE}I1205 ready\nserving fornet\nlast words\n"
    assert hidden.dropped == 2


def test_port_in_use_is_a_clear_error(triton_server: RunningServer) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        options = server_options(triton_server.model)
        options = type(options)(**{**options.__dict__, "http_port": busy})
        with pytest.raises(ServingError, match=rf"port {busy} .* in use.*--http-port"):
            ServerProcess(options).start()


def test_unreadable_model_is_a_clear_error(tmp_path: Path, triton_server: RunningServer) -> None:
    missing = server_options(tmp_path / "nothing.onnx")
    with pytest.raises(ServingError, match="model file not found"):
        ServerProcess(missing).start()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    Path(f"{broken}.json").write_text(Path(f"{triton_server.model}.json").read_text())
    log = tmp_path / "server.log"
    with log.open("w") as stream:
        server = ServerProcess(server_options(broken), log=stream).start()
        with pytest.raises(ServingError, match="exited with status 2"):
            server.wait_ready(timeout_s=60)
        server.stop()
    assert "error:" in log.read_text()


def test_serving_a_checkpoint_says_what_the_server_environment_lacks(lite: LiteExport, tmp_path: Path) -> None:
    """The server environment is torch-free: a checkpoint is refused up front, naming the two ways out."""
    options = ServerOptions(model=ModelSpec(lite.checkpoint, device="cpu", input_size=(64, 128)),
                            http_port=1, grpc_port=2, metrics_port=3)
    with pytest.raises(ServingError, match=r"opens with the torch backend, which needs torch in the server "
                                           r"environment .*: export the checkpoint with `fornet export") as info:
        ServerProcess(options).start()
    assert "Traceback" not in str(info.value)


def test_missing_server_environment_names_the_set_up_step(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="make triton-env"):
        server_environment(tmp_path)


def test_metrics_parser_reads_the_model_counts() -> None:
    text = ('nv_inference_count{model="fornet",version="1"} 12\n'
            'nv_inference_exec_count{model="fornet",version="1"} 4\n'
            'nv_inference_count{model="other",version="1"} 99\n')
    stats = parse_batching_stats(text)
    assert (stats.inference_count, stats.execution_count, stats.average_batch) == (12, 4, 3.0)


@pytest.mark.slow
def test_full_queue_refuses_with_a_clear_error(triton_server: RunningServer, local: Segmenter,
                                               tmp_path: Path) -> None:
    inputs = frames(8, INPUT_SIZE, seed=10)
    expected = [local(frame) for frame in inputs]
    options = server_options(triton_server.model, max_batch=1, max_queue=1, queue_delay_us=0)
    with (tmp_path / "server.log").open("w") as log, ServerProcess(options, log=log) as server:
        server.wait_ready(timeout_s=120)
        result = run_load(options.http_url, inputs, expected, concurrency=8, requests=10)
        assert result.refused > 0 and result.answered + result.refused == 80, result.summary()
        assert result.mismatched == 0 and result.failed == 0, result.summary()
        assert all("queue" in message.lower() for message in result.messages), result.messages
        with SegmentationClient(options.http_url) as client:
            assert client.is_ready()


def test_bench_triton_checks_served_labels(triton_server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    options = triton_server.options
    status = bench.main(["--engine", str(triton_server.model), "--device", "cpu", "--threads", "1",
                         "--triton-url", options.http_url, "--metrics-url", options.metrics_url,
                         "--concurrency", "1,4", "--requests", "8", "--frame-size", "64x128"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "| served, concurrency 4 |" in out and "| local Segmenter |" in out
    assert (f"served model 'fornet' at {options.http_url} vs {triton_server.model} run locally, on 16 random 64x128 "
            "BGR frames: every served answer (40 of 40 requests) equalled the local labels") in out
    assert "| equal / differed / refused / lost |" in out


@pytest.mark.fault
def test_bench_triton_says_when_the_server_serves_another_model(triton_server: RunningServer, lite: LiteExport,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The FP16 export as the local reference of the FP32 server: the answers differ, counted and explained."""
    options = triton_server.options
    status = bench.main(["--engine", str(lite.onnx_fp16), "--device", "cpu", "--threads", "1",
                         "--triton-url", options.http_url, "--metrics-url", options.metrics_url,
                         "--concurrency", "2", "--requests", "4", "--frame-size", "64x128"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert re.search(r"NOT all served answers equalled the local labels: \d+ equal, [1-9]\d* differed, 0 lost of 8 "
                     r"requests; is the server serving fornet_fp16.onnx", out), out
    assert f"(`fornet serve {lite.onnx_fp16}`)?" in out


@pytest.mark.fault
def test_port_probe_takes_a_port_whose_closed_connections_linger() -> None:
    """Right after a server stops, its port is named only by closed connections (TIME_WAIT): free for a restart,
    while a port something listens on stays refused."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end waits in TIME_WAIT
            client.recv(1)
        with pytest.raises(ServingError, match=rf"port {port} .* in use"):
            require_free_ports("127.0.0.1", {"--http-port": port})
    require_free_ports("127.0.0.1", {"--http-port": port})
