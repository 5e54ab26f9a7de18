"""Property-based tests (Hypothesis): the frame validator, the sidecar reader and the checkpoint loader
meet generated bad inputs with their own typed errors, never a crash of another kind."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fornet.calibration.preprocess import ImageError, check_image
from fornet.model.checkpoint import CheckpointError, load_model, read_checkpoint
from fornet.runtime.model_io import ModelSidecar, SidecarError, read_sidecar

pytestmark = pytest.mark.fault
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.float16, np.float32, np.float64, np.bool_, np.int64])
ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                max_size=3), max_leaves=8)


def _is_valid_frame(value: Any) -> bool:
    return (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3
            and value.shape[2] == 3 and value.shape[0] > 0 and value.shape[1] > 0)


@PROPERTY
@given(ARRAYS | JSON)
def test_frame_validator_accepts_exactly_uint8_hxwx3(value: Any) -> None:
    if _is_valid_frame(value):
        assert check_image(value) is value
    else:
        with pytest.raises(ImageError, match=r"pass|convert|drop"):
            check_image(value)


@pytest.fixture(scope="module")
def sidecar_dict(lite: Any) -> dict[str, Any]:
    return json.loads(ModelSidecar.path_for(lite.onnx).read_text())


def _mutate(data: dict[str, Any], path: list[str], value: Any, delete: bool) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    node = copy
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            break
        node = node[key]
    else:
        if delete:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return copy


def _keys(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    for key, value in data.items():
        paths.append([*prefix, key])
        if isinstance(value, dict):
            paths.extend(_keys(value, (*prefix, key)))
    return paths


@PROPERTY
@given(data=st.data(), value=JSON, delete=st.booleans())
def test_sidecar_reader_refuses_damaged_sidecars_with_sidecar_errors(sidecar_dict: dict[str, Any], data: Any,
                                                                     value: Any, delete: bool) -> None:
    path = data.draw(st.sampled_from(_keys(sidecar_dict)))
    damaged = _mutate(sidecar_dict, path, value, delete)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fornet.onnx.json"
        file.write_text(json.dumps(damaged))
        try:
            read_sidecar(file)
        except SidecarError as exc:
            assert str(file) in str(exc)


@PROPERTY
@given(st.binary(max_size=300))
def test_sidecar_reader_refuses_random_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fornet.onnx.json"
        file.write_bytes(content)
        with pytest.raises(SidecarError, match=r"fornet\.onnx\.json"):
            read_sidecar(file)


@pytest.fixture(scope="module")
def checkpoint_bytes(lite: Any) -> bytes:
    return Path(lite.checkpoint).read_bytes()


@PROPERTY
@given(st.binary(max_size=400))
def test_checkpoint_loader_calls_random_bytes_corrupt(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.pth"
        file.write_bytes(content)
        with pytest.raises(CheckpointError, match=r"model\.pth"):
            read_checkpoint(file)


@PROPERTY
@given(cut=st.floats(0.0, 0.999), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_checkpoint_loader_refuses_truncated_and_flipped_files(checkpoint_bytes: bytes, cut: float,
                                                              flips: list[tuple[float, int]]) -> None:
    content = bytearray(checkpoint_bytes[: int(len(checkpoint_bytes) * cut)])
    for where, mask in flips:
        if content:
            content[int(where * (len(content) - 1))] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.pth"
        file.write_bytes(bytes(content))
        with pytest.raises(CheckpointError, match=r"model\.pth"):
            load_model(file)


@PROPERTY
@given(JSON)
def test_checkpoint_loader_refuses_foreign_objects(value: Any) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.pth"
        file.write_bytes(buffer.getvalue())
        with pytest.raises(CheckpointError, match=r"model\.pth"):
            load_model(file)
