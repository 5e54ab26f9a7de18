"""The inference backend interface, in the manner of Polygraphy's runners.

A :class:`Backend` is a context manager: entering it loads the model (``activate``), leaving
it frees it (``deactivate``). Inside, :attr:`~Backend.input_specs` and
:attr:`~Backend.output_specs` describe the I/O tensors and :meth:`~Backend.infer` runs one
inference. ``infer`` is the same for every backend: it checks the feed's names, shapes and
dtypes against :attr:`~Backend.input_specs` (raising :class:`BackendInputError`), times the
call and delegates to the subclass's :meth:`~Backend._infer_impl`.

A backend also says what it is, on the class, for the registry (:mod:`fornet.runtime.registry`):
its ``NAME``, the file ``SUFFIXES`` it opens, the ``DEVICES`` it runs on, the
:class:`~fornet.runtime.model_spec.ModelSpec` fields it honours beyond the common ones (``OPTIONS``),
the ``PRECISIONS`` it runs models in, whether it has GPU pre/post kernels (``GPU_PREPOST``) and
whether the model's sidecar describes its I/O (``READS_SIDECAR``); :meth:`~Backend.from_spec` builds
one from a spec.

Usage::

    with OnnxRuntimeBackend("fornet.onnx") as backend:
        outputs = backend.infer({"image": batch})
        print(backend.last_inference_time)
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.model_io import ModelIO, ModelSidecar, check_sidecar_binding

if TYPE_CHECKING:
    from fornet.runtime.model_spec import ModelSpec

_log = logging.getLogger(__name__)


class BackendError(FornetRuntimeError):
    """A backend that cannot load its model or is used outside its ``with`` block."""


class BackendInputError(BackendError):
    """A feed whose names, shapes or dtypes do not match the backend's inputs."""


class TensorSpec(NamedTuple):
    """Shape and NumPy dtype of one I/O tensor; a ``None`` dimension is dynamic."""

    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        """E.g. ``1x3x512x1024 float32`` (``?`` for a dynamic dimension)."""
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{dims} {self.dtype}"


class Backend(ABC):
    """Base class of inference backends (see the module docstring)."""

    #: The registry name (``--backend``).
    NAME: ClassVar[str]
    #: How reports name the runtime (``pytorch`` for ``torch``); the registry name when unset.
    LABEL: ClassVar[str | None] = None
    #: File suffixes this backend opens (lower case, with the dot).
    SUFFIXES: ClassVar[tuple[str, ...]]
    #: ``"cpu"`` and/or ``"cuda"``.
    DEVICES: ClassVar[frozenset[str]]
    #: :class:`ModelSpec` fields honoured beyond the common ones (``plugin``, ``cuda_graph``, ...).
    OPTIONS: ClassVar[frozenset[str]] = frozenset()
    #: ``--precision`` values this backend runs models in.
    PRECISIONS: ClassVar[tuple[str, ...]] = ("auto",)
    #: Whether frames can be pre/post-processed by GPU kernels around this backend's device buffers.
    GPU_PREPOST: ClassVar[bool] = False
    #: Whether the model's I/O comes from its sidecar JSON (else from the backend: :attr:`model_io`).
    READS_SIDECAR: ClassVar[bool] = True
    #: Python modules the backend needs, each with how to install it: ``(module, hint)`` pairs.
    LIBRARIES: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def missing_libraries(cls) -> list[str]:
        """``"module (how to install it)"`` for each of :attr:`LIBRARIES` this Python cannot import."""
        return [f"{module} ({hint})" for module, hint in cls.LIBRARIES if not _importable(module)]

    @classmethod
    def require_libraries(cls) -> None:
        """Refuse, before any file is read, a backend whose libraries are not installed here."""
        missing = cls.missing_libraries()
        if missing:
            raise BackendError(f"the {cls.NAME} backend needs {' and '.join(missing)}, which this Python cannot "
                               "import; install it, or open an exported file another backend runs (--backend)")

    def __init__(self, name: str, device: str = "cpu") -> None:
        self.name = name
        #: ``"cpu"`` or ``"cuda:N"`` once active (``"auto"`` may be resolved only on activation).
        self.device = device
        self.is_active = False
        #: Wall time in seconds of the last :meth:`infer` call's model run (after the input checks).
        self.last_inference_time: float | None = None
        #: ``fp32``, ``fp16`` or ``bf16`` once active, for a backend that chooses the precision its float layers
        #: run in (OpenVINO, PyTorch autocast); None where the model file fixes it.
        self.inference_precision: str | None = None

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: ModelSpec) -> Backend:
        """The backend of ``spec`` (already checked by :meth:`ModelSpec.backend_class`), not yet active."""

    @classmethod
    def sidecar_path(cls, path: Path) -> Path:
        """Where the sidecar describing the model file ``path`` is expected (an ONNX file's: ``<file>.json``)."""
        return ModelSidecar.path_for(path)

    @classmethod
    def check_sidecar(cls, sidecar: ModelSidecar, sidecar_path: Path, path: Path) -> None:
        """Refuse a sidecar that was not written for the model file ``path`` (naming both and the fix)."""
        check_sidecar_binding(sidecar, sidecar_path, path)

    @property
    def runs_on_cpu(self) -> bool:
        """Whether the model runs on the CPU (then there are no host/device copies)."""
        return self.device == "cpu"

    @property
    def label(self) -> str:
        """``<name>-cpu`` or ``<name>-cuda``: the backend and where it runs, for reports."""
        return f"{self.LABEL or self.NAME}-{'cpu' if self.runs_on_cpu else 'cuda'}"

    @property
    def max_batch(self) -> int | None:
        """The largest batch one call takes (None: any; TensorRT: the plan's profile); only while active."""
        return None

    @property
    def model_io(self) -> ModelIO:
        """The model's I/O contract, for a backend that does not read a sidecar (only while active)."""
        raise BackendError(f"{self.name} reads its I/O from the model's sidecar")

    # -- lifecycle -------------------------------------------------------------------------
    def activate(self) -> None:
        """Load the model; called by ``__enter__``."""
        if self.is_active:
            raise BackendError(f"{self.name} is already active; do not enter the same backend twice")
        self._activate_impl()
        self.is_active = True

    def deactivate(self) -> None:
        """Free the model; called by ``__exit__``."""
        if self.is_active:
            self._deactivate_impl()
            self.is_active = False

    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.deactivate()

    # -- I/O description -------------------------------------------------------------------
    @property
    def input_specs(self) -> dict[str, TensorSpec]:
        """Input name -> :class:`TensorSpec`, in the model's order."""
        self._require_active()
        return self._input_specs_impl()

    @property
    def output_specs(self) -> dict[str, TensorSpec]:
        """Output name -> :class:`TensorSpec`, in the model's order."""
        self._require_active()
        return self._output_specs_impl()

    # -- inference ---------------------------------------------------------------------------
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference on ``feed`` (input name -> array); return output name -> array.

        Raises:
            BackendError: the backend is not active.
            BackendInputError: a missing or unknown input, or a wrong shape or dtype.
        """
        self._require_active()
        self._check_feed(feed)
        start = time.perf_counter()
        outputs = self._infer_impl(dict(feed))
        self.last_inference_time = time.perf_counter() - start
        return outputs

    def staged_compute(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None] | None:
        """A callable that runs the model on ``feed`` already where the model reads it, and waits for it.

        The ``compute`` scope of the benchmark. On the CPU this is the run itself; a GPU backend
        uploads ``feed`` once here and leaves both host/device copies out of the callable. None
        when the backend cannot separate its copies from its compute.
        """
        self._require_active()
        self._check_feed(feed)
        if not self.runs_on_cpu:
            return None
        checked = dict(feed)

        def compute() -> None:
            self._infer_impl(checked)

        return compute

    def _check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        specs = self.input_specs
        missing = [n for n in specs if n not in feed]
        unknown = [n for n in feed if n not in specs]
        if missing or unknown:
            raise BackendInputError(
                f"{self.name}: feed has inputs {sorted(feed)} but the model takes {list(specs)}"
                f"{f'; missing {missing}' if missing else ''}{f'; unknown {unknown}' if unknown else ''}; "
                "pass exactly the model's input names"
            )
        for name, spec in specs.items():
            array = feed[name]
            if not isinstance(array, np.ndarray):
                raise BackendInputError(f"{self.name}: input {name!r} is a {type(array).__name__}; "
                                        f"pass a numpy array of {spec.describe()}")
            shape_ok = len(array.shape) == len(spec.shape) and all(
                d is None or d == a for d, a in zip(spec.shape, array.shape, strict=True))
            if not shape_ok:
                raise BackendInputError(f"{self.name}: input {name!r} has shape {'x'.join(map(str, array.shape))} "
                                        f"but the model takes {spec.describe()}; resize or batch the input "
                                        "to that shape (the layout is part of the shape)")
            if array.dtype != spec.dtype:
                raise BackendInputError(f"{self.name}: input {name!r} has dtype {array.dtype} but the model "
                                        f"takes {spec.dtype}; convert it with .astype(np.{spec.dtype})")

    def _require_active(self) -> None:
        if not self.is_active:
            raise BackendError(f"{self.name} is not active; use it inside `with backend:` "
                               "(or call activate() first)")

    # -- for subclasses ----------------------------------------------------------------------
    @abstractmethod
    def _activate_impl(self) -> None:
        """Load the model."""

    @abstractmethod
    def _deactivate_impl(self) -> None:
        """Release the model."""

    @abstractmethod
    def _input_specs_impl(self) -> dict[str, TensorSpec]:
        """Input specs of the loaded model."""

    @abstractmethod
    def _output_specs_impl(self) -> dict[str, TensorSpec]:
        """Output specs of the loaded model."""

    @abstractmethod
    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on an already validated feed."""


def _importable(module: str) -> bool:
    """Whether ``import module`` can find the module (without importing it)."""
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def deactivate_after_error(backend: Backend) -> None:
    """Deactivate ``backend`` while an earlier error propagates: a failure here is logged, never raised.

    Cleanup on an error path must not replace the error that caused it (a missing plugin, a
    version mismatch) with a secondary one.
    """
    try:
        backend.deactivate()
    except Exception as exc:  # the caller is already raising the error that matters
        _log.warning("%s: freeing the model after an earlier error also failed: %s", backend.name, exc)
