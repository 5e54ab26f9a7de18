"""``fornet export --triton``: the repository's configs against Triton's schema and the model files, atomic
writes, and the Python-backend model served for real by the bundled tritonserver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fornet.export.errors import ExportError
from fornet.export.triton import repository
from fornet.export.triton.check import check_repository, parse_config
from fornet.export.triton.repository import TritonRepositoryOptions, write_triton_repository
from fornet.runtime.segmenter import Segmenter
from fornet.runtime.serving.client import SegmentationClient
from fornet.runtime.serving.launcher import RepositoryServer
from fornet.runtime.tensorrt.plan_metadata import ShapeProfile, TensorRecord, metadata_path
from tests.helpers.engine_metadata import PLUGIN, engine_metadata
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import frames, post_zero_size_frame, server_options


@pytest.fixture(scope="module")
def exports(lite: LiteExport):  # type: ignore[no-untyped-def]
    return lite


def _fake_plan(folder: Path, plugin: bool) -> Path:
    """A plan file with the metadata `fornet build` writes (TensorRT is not needed to read it)."""
    plan = folder / "fornet.plan"
    plan.write_bytes(b"plan")
    h, w = INPUT_SIZE
    profile = ShapeProfile(min=(1, h, w, 3), opt=(2, h, w, 3), max=(4, h, w, 3))
    engine_metadata(
        inputs=(TensorRecord("image", (-1, h, w, 3), "UINT8", profile),),
        outputs=(TensorRecord("labels", (-1, h, w), "UINT8"), TensorRecord("masks", (-1, 4, 4, 8), "FLOAT")),
        plugin=PLUGIN if plugin else None,
    ).save(metadata_path(plan))
    return plan


def test_dynamic_batch_repository_matches_its_models(exports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = _fake_plan(tmp_path, plugin=True)
    repo = write_triton_repository(exports.raw_labels, tmp_path / "repo",
                                   TritonRepositoryOptions(onnx_instance="cpu", plan=plan, max_batch=8))
    assert check_repository(repo) == ["fornet", "fornet_onnx", "fornet_trt"]
    onnx_config = parse_config(repo / "fornet_onnx" / "config.pbtxt")
    assert onnx_config.platform == "onnxruntime_onnx" and onnx_config.max_batch_size == 8
    assert onnx_config.HasField("dynamic_batching")
    assert onnx_config.dynamic_batching.default_queue_policy.max_queue_size > 0
    trt_config = parse_config(repo / "fornet_trt" / "config.pbtxt")
    assert trt_config.max_batch_size == 4  # the profile's maximum
    assert [t.name for t in trt_config.output] == ["labels"]
    readme = (repo / "README.md").read_text()
    assert 'tritonserver --model-repository="$(pwd)/repo"' in readme
    assert '--backend-config=tensorrt,plugins="/path/to/libfornet_plugins.so"' in readme


def test_static_batch_repository_keeps_the_batch_in_the_dims(exports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = write_triton_repository(exports.onnx, tmp_path / "repo")
    assert check_repository(repo) == ["fornet", "fornet_onnx"]
    config = parse_config(repo / "fornet_onnx" / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, *INPUT_SIZE]
    assert "--backend-config" not in (repo / "README.md").read_text()


def test_schema_and_dims_mistakes_are_caught(exports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = write_triton_repository(exports.raw_labels, tmp_path / "repo")
    config = repo / "fornet_onnx" / "config.pbtxt"
    text = config.read_text()
    config.write_text(text.replace("TYPE_UINT8", "TYPE_UINT9", 1))
    with pytest.raises(ExportError, match="schema"):
        check_repository(repo)
    config.write_text(text.replace("dims: [ 64, 128, 3 ]", "dims: [ 64, 129, 3 ]"))
    with pytest.raises(ExportError, match=r"image: config says TYPE_UINT8 \[64, 129, 3\]"):
        check_repository(repo)


def test_existing_repository_is_refused_and_never_half_overwritten(exports, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_triton_repository(exports.raw_labels, tmp_path / "repo")
    before = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    with pytest.raises(ExportError, match=r"already exists.*--replace-packages"):
        write_triton_repository(exports.onnx, repo)
    calls = []

    def failing(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        original(*args)

    original = repository._write_model
    monkeypatch.setattr(repository, "_write_model", failing)
    with pytest.raises(OSError, match="disk full"):
        write_triton_repository(exports.onnx, repo, TritonRepositoryOptions(overwrite=True))
    after = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging folder left behind
    monkeypatch.undo()
    write_triton_repository(exports.onnx, repo, TritonRepositoryOptions(overwrite=True))
    assert parse_config(repo / "fornet_onnx" / "config.pbtxt").max_batch_size == 0


def test_plan_without_metadata_is_a_clear_error(exports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "other.plan"
    plan.write_bytes(b"plan")
    with pytest.raises(ExportError, match="no metadata file"):
        write_triton_repository(exports.raw_labels, tmp_path / "repo", TritonRepositoryOptions(plan=plan))
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
def test_python_backend_model_served_by_tritonserver(exports, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = write_triton_repository(exports.raw_labels, tmp_path / "repo", TritonRepositoryOptions(onnx_instance="cpu"))
    options = server_options(repo)
    with (tmp_path / "tritonserver.log").open("w") as log, RepositoryServer(options, log=log) as server, \
            Segmenter(exports.raw_labels, device="cpu") as local, SegmentationClient(options.http_url) as client:
        server.wait_ready(timeout_s=90)
        for frame in frames(2, INPUT_SIZE, seed=5) + frames(1, (90, 130), seed=6):
            assert np.array_equal(client.segment(frame), local(frame))
        status, answer = post_zero_size_frame(options.http_url)  # bad input: a 400 naming it, no traceback
        assert status == 400 and "frames[0]" in answer and "Traceback" not in answer, (status, answer)
        assert client.segment(frames(1, INPUT_SIZE, seed=7)[0]).shape == INPUT_SIZE
