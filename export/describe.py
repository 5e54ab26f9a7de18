"""``fornet info --model fornet.onnx``: what an exported ONNX file is, from the file and its sidecar.

Inputs and outputs (names, shapes, types), the graph's precision, how the Top-K gate is exported,
the file's sha256 and whether the sidecar beside it (or the one given) describes this very file.
"""

from __future__ import annotations

import os
from pathlib import Path

from fornet.errors import FornetError
from fornet.export.tensorrt.onnx_summary import OnnxInput, inspect_onnx
from fornet.runtime.model_io import ModelSidecar, check_sidecar_binding


def _tensor(tensor: OnnxInput) -> str:
    return f"{tensor.name}: {'x'.join('?' if d is None else str(d) for d in tensor.shape)} {tensor.dtype}"


def describe_onnx(path: str | os.PathLike[str], sidecar: str | os.PathLike[str] | None = None) -> str:
    """Human-readable description of the ONNX file at ``path`` (see the module docstring).

    Raises:
        FornetError: the file is missing or not an ONNX model.
    """
    summary = inspect_onnx(path)
    lines = [f"ONNX file {Path(path)}", f"  sha256: {summary.sha256}", f"  precision: {summary.graph_precision}"]
    lines += [f"  input  {_tensor(t)}" for t in summary.inputs]
    lines += [f"  output {_tensor(t)}" for t in summary.output_tensors]
    if summary.gate_nodes:
        function = " with its model-local function (ONNX Runtime runs it without a library)" \
            if summary.gate_function else ""
        lines.append(f"  Top-K gate: {summary.gate_nodes} fornet::TopKGate node(s){function}; TensorRT needs the "
                     "plugin (fornet-build-plugin)")
    else:
        lines.append("  Top-K gate: standard ops (TensorRT's own TopK; no plugin needed)")
    source = Path(sidecar) if sidecar is not None else ModelSidecar.path_for(Path(path))
    try:
        record = ModelSidecar.load(source)
        check_sidecar_binding(record, source, Path(path))
    except FornetError as exc:
        lines.append(f"  sidecar {source}: not usable ({exc})")
        return "\n".join(lines)
    io = record.model_io(str(source))
    lines += [f"  sidecar {source}: describes this file",
              f"  model: {io.describe()}",
              f"  Top-K ratios {list(record.topk.ratios)}, k {list(record.topk.ks)} on a "
              f"{record.topk.grid[0]}x{record.topk.grid[1]} selector grid",
              f"  exported from {record.checkpoint.file} (sha256 {record.checkpoint.sha256[:12]}...) by "
              f"{record.tool.name} {record.tool.version}"]
    return "\n".join(lines)
