"""onnxsim on every export, plus the structural checks the exported graph must pass.

* :func:`simplify` runs onnxsim (constant folding, dead code, shape arithmetic removal) and
  its own output check (ONNX Runtime on random inputs, original vs simplified; ORT runs the
  ``fornet::TopKGate`` node through its model-local function).
* :func:`check_graph` runs ``onnx.checker`` with ``full_check`` (strict shape inference).
* :func:`float_shape_arithmetic` lists nodes that compute floats from tensor shapes (such
  arithmetic gets quantized or rounded differently by backends: k and sizes must be integers).
"""
# ruff: noqa: TID253

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import onnx
from onnx import ModelProto, TensorProto

from fornet.export.errors import GraphCheckError

_SHAPE_SOURCES = ("Shape", "Size")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def simplify(model: ModelProto, test_shapes: Mapping[str, Sequence[int]] | None = None) -> ModelProto:
    """Simplify ``model`` with onnxsim and check the result on random inputs.

    Args:
        model: the exported model (with the gate function attached, so ORT can run it).
        test_shapes: concrete input shapes for the check when the model has dynamic dims.

    Raises:
        GraphCheckError: onnxsim failed or its outputs differ from the original model's.
    """
    import onnxsim

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxsim prints "Checking 0/1..."
            simplified, ok = onnxsim.simplify(
                model, check_n=1,
                test_input_shapes={k: list(v) for k, v in test_shapes.items()} if test_shapes else None,
            )
    except Exception as exc:  # onnxsim raises plain RuntimeError/ValueError from C++
        raise GraphCheckError(f"onnxsim failed on the exported graph ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc!r}); this is a bug in "
                              "the exporter: report it with the command line used") from exc
    if not ok:
        raise GraphCheckError("onnxsim's check found the simplified graph's outputs differ from the "
                              "exported graph's; this is a bug in the exporter: report it")
    return simplified


def check_graph(model: ModelProto) -> None:
    """``onnx.checker.check_model(full_check=True)``, as a :class:`GraphCheckError`."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GraphCheckError(f"the exported ONNX graph is invalid: {str(exc).splitlines()[0]}; "
                              "this is a bug in the exporter: report it") from exc


def _elem_types(model: ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in (*graph.input, *graph.output, *graph.value_info)}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def float_shape_arithmetic(model: ModelProto) -> list[str]:
    """Names of nodes that compute floating-point values from tensor shapes.

    A value counts as shape arithmetic when it comes from ``Shape``/``Size`` through nodes
    whose every non-constant input is itself shape arithmetic (so ``Resize(x, sizes)`` or
    ``ConstantOfShape`` produce data, not shape arithmetic).
    """
    types = _elem_types(model)
    constant = {init.name for init in model.graph.initializer}
    tainted: set[str] = set()
    offenders = []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        dynamic = [i for i in node.input if i and i not in constant]
        if not dynamic and node.op_type not in _SHAPE_SOURCES:
            constant.update(node.output)
            continue
        if node.op_type in _SHAPE_SOURCES or (
                node.op_type != "ConstantOfShape" and all(i in tainted for i in dynamic)):
            tainted.update(node.output)
            if any(types.get(out) in _FLOAT_TYPES for out in node.output):
                offenders.append(node.name or node.op_type)
    return offenders


def require_no_float_shape_arithmetic(model: ModelProto) -> None:
    """Raise :class:`GraphCheckError` if :func:`float_shape_arithmetic` finds anything."""
    offenders = float_shape_arithmetic(model)
    if offenders:
        raise GraphCheckError(f"float arithmetic on tensor shapes survived simplification in "
                              f"{len(offenders)} node(s) ({', '.join(offenders[:5])}); sizes and k must be "
                              "integer constants: export with a fixed --input-size, or report this bug")
