"""Check a Triton model repository without a server: Triton's own schema, then the model files.

Every ``config.pbtxt`` is parsed with Triton's protobuf schema (``tritonclient.grpc.model_config_pb2``,
the ``serve`` extra), which rejects unknown fields and values; then each input and output is
compared, name, data type and dims, with the model file it configures: the ONNX graph, or the
TensorRT plan's metadata (``model.plan.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fornet.export.errors import ExportError
from fornet.export.triton.config import TENSORRT_TO_TRITON, triton_dtype
from fornet.export.triton.plan_io import read_plan_io

#: A tensor as the model file defines it: Triton data type and full dims (-1 dynamic).
Signature = dict[str, tuple[str, tuple[int, ...]]]


def parse_config(path: Path) -> Any:
    """``config.pbtxt`` parsed into Triton's ``ModelConfig`` message; :class:`ExportError` if it does not conform."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise ExportError("checking a config.pbtxt needs Triton's schema: pip install -e '.[serve]' "
                          "(tritonclient[grpc])") from exc
    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ExportError(f"{path} does not conform to Triton's model configuration schema: {exc}") from exc


def _onnx_signature(path: Path) -> Signature:
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    signature: Signature = {}
    for value in [*graph.input, *graph.output]:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        signature[value.name] = (triton_dtype(np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))), dims)
    return signature


def _plan_signature(path: Path) -> Signature:
    plan = read_plan_io(path)
    return {t.name: (TENSORRT_TO_TRITON.get(t.dtype, t.dtype), t.shape) for t in [*plan.inputs, *plan.outputs]}


def _compare(config: Any, signature: Signature, source: Path) -> list[str]:
    from tritonclient.grpc import model_config_pb2

    problems = []
    batching = config.max_batch_size > 0
    for tensor in [*config.input, *config.output]:
        if tensor.name not in signature:
            problems.append(f"{tensor.name}: not a tensor of {source.name} (it has {sorted(signature)})")
            continue
        dtype, dims = signature[tensor.name]
        if batching and dims[:1] != (-1,):
            problems.append(f"{tensor.name}: max_batch_size > 0 but {source.name} has a fixed batch {dims[:1]}")
        expected = dims[1:] if batching else dims
        declared = model_config_pb2.DataType.Name(tensor.data_type)
        fits = len(tensor.dims) == len(expected) and all(
            m in (-1, c) for m, c in zip(expected, tensor.dims, strict=True))
        if declared != dtype or not fits:
            problems.append(f"{tensor.name}: config says {declared} {list(tensor.dims)}, {source.name} has {dtype} "
                            f"{list(expected)}")
    return problems


def check_model(folder: Path) -> list[str]:
    """Problems of one model folder (empty when it is right).

    A dim the model leaves dynamic (-1) may be fixed in the configuration; every other dim must match.
    """
    config_path = folder / "config.pbtxt"
    config = parse_config(config_path)
    problems = [] if config.name == folder.name else [f"name {config.name!r} differs from its folder"]
    version = folder / "1"
    if config.platform == "onnxruntime_onnx":
        problems += _compare(config, _onnx_signature(version / "model.onnx"), version / "model.onnx")
    elif config.platform == "tensorrt_plan":
        problems += _compare(config, _plan_signature(version / "model.plan"), version / "model.plan")
    elif config.backend == "python":
        model_file = config.parameters["model_file"].string_value if "model_file" in config.parameters else ""
        missing = [name for name in ("model.py", model_file) if not name or not (version / name).is_file()]
        problems += [f"missing {version / name}" for name in missing]
    else:
        problems.append(f"unexpected platform {config.platform!r} / backend {config.backend!r}")
    return [f"{folder.name}: {problem}" for problem in problems]


def check_repository(repo: str | Path) -> list[str]:
    """Check every model of ``repo``; return the model names; :class:`ExportError` listing every problem."""
    repo = Path(repo)
    folders = sorted(p.parent for p in repo.glob("*/config.pbtxt"))
    if not folders:
        raise ExportError(f"{repo} holds no <model>/config.pbtxt; write one with `fornet export --triton`")
    problems = [problem for folder in folders for problem in check_model(folder)]
    if problems:
        raise ExportError(f"Triton repository {repo} does not match its models:\n  " + "\n  ".join(problems))
    return [folder.name for folder in folders]
