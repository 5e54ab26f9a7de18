"""The backend registry: every inference backend by name, in the manner of Polygraphy's and mmdeploy's.

A backend is a :class:`~fornet.runtime.backend.Backend` subclass that declares what it is on the class
(``NAME``, the file ``SUFFIXES`` it opens, the ``DEVICES`` it runs on, the :class:`ModelSpec` fields it
honours in ``OPTIONS``, the ``PRECISIONS`` it can run a model in) and builds itself from a spec
(``from_spec``). The table below names each one's module, so listing the backends imports none of
them, and loading one imports only its own module (which defers its heavy library to ``activate``).

A new backend is one module plus one line here. With ``backend="auto"`` a file opens with the first
backend in this table that takes its suffix, so the order is the priority.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from fornet.runtime.errors import FornetRuntimeError

if TYPE_CHECKING:
    from fornet.runtime.backend import Backend

#: Backend name -> ``"module:Class"``, in the order ``backend="auto"`` tries them.
BACKENDS: dict[str, str] = {
    "tensorrt": "fornet.runtime.tensorrt.backend:TensorRTBackend",
    "onnxruntime": "fornet.runtime.onnxrt:OnnxRuntimeBackend",
    "openvino": "fornet.runtime.openvino_backend:OpenVinoBackend",
    "torch": "fornet.runtime.torch_backend:TorchBackend",
}


class BackendChoiceError(FornetRuntimeError):
    """No registered backend opens the file, or the one named is unknown."""


def backend_names() -> tuple[str, ...]:
    """The registered backends, in priority order (no backend module is imported)."""
    return tuple(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``."""
    if name not in BACKENDS:
        raise BackendChoiceError(f"unknown backend {name!r}; choose auto or one of {', '.join(BACKENDS)}")
    module, _, attribute = BACKENDS[name].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), attribute)
    return cls


def accepted_suffixes() -> str:
    """``".plan (tensorrt), .onnx (onnxruntime), ..."`` for messages."""
    return ", ".join(f"{suffix} ({name})" for name in BACKENDS for suffix in backend_class(name).SUFFIXES)


def resolve_backend(path: str | os.PathLike[str], backend: str = "auto") -> type[Backend]:
    """The backend class for ``path``: ``backend`` itself, or (``"auto"``) the first that takes its suffix."""
    if backend != "auto":
        return backend_class(backend)
    suffix = Path(path).suffix.lower()
    for name in BACKENDS:
        cls = backend_class(name)
        if suffix in cls.SUFFIXES:
            return cls
    raise BackendChoiceError(f"cannot tell the backend of {Path(path).name!r} from its extension; pass a file ending "
                             f"in {accepted_suffixes()}, or name the backend with --backend")
