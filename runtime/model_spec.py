"""``ModelSpec``: one value that says which model to open and how, for every command and the Python API.

    from fornet.runtime import ModelSpec, Segmenter

    spec = ModelSpec("export/fornet_fp16.plan", device="cuda:0", cuda_graph=True)
    with Segmenter(spec) as seg:                       # or Segmenter("export/fornet.onnx", device="cpu")
        labels = seg(frame)

Each field declares its command-line flag, so ``fornet run``, ``serve``, ``bench``, ``eval`` and
``info`` open a model with the same flags (``--model PATH --backend --device ...``) and a command
hands the parsed spec to :class:`~fornet.runtime.segmenter.Segmenter` unchanged. Which backend opens
the file, and which of the fields it honours, is the backend's own declaration in the registry
(:mod:`fornet.runtime.registry`); :meth:`ModelSpec.backend_class` refuses a field the chosen backend
would ignore, naming the flag.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fornet.model.config import variant_option
from fornet.options import (
    DEVICE_METAVAR,
    OptionGroup,
    declared_flags,
    device_arg,
    field_default,
    hw_arg,
    option,
    parse_device,
    positive_int_arg,
)
from fornet.runtime.errors import FornetRuntimeError
from fornet.runtime.registry import backend_class, backend_names, resolve_backend

if TYPE_CHECKING:
    from fornet.runtime.backend import Backend

#: The ``--help`` group of the model flags.
MODEL = OptionGroup("model")

#: Precisions a backend may run a model in; ``auto`` is the file's own (ONNX, plan) or FP32 (checkpoint).
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

#: Where frames are pre/post-processed: ``auto`` (the GPU when the backend has GPU kernels), ``gpu``, ``cpu``.
PREPOST_PLACES = ("auto", "gpu", "cpu")

#: Fields every backend honours; the others are listed by each backend in ``Backend.OPTIONS``.
COMMON_FIELDS = frozenset({"path", "backend", "device", "precision", "sidecar", "verify_sidecar", "batch", "threads",
                           "prepost"})


class ModelSpecError(FornetRuntimeError):
    """A model spec whose fields do not fit the model file or its backend."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to open and how (each field declares its flag; see the module docstring).

    Attributes:
        path: a TensorRT plan (``.plan``/``.engine``), an ONNX file (with its ``.onnx.json`` sidecar) or a
            checkpoint (``.pth``).
        backend: ``"auto"`` (from the extension) or a registered backend name.
        device: ``"auto"``, ``"cpu"`` or ``"cuda:N"`` (``"cuda"``, ``N`` and an int ``N`` are accepted).
        precision: the precision a backend that can choose runs in (a checkpoint: ``fp16``/``bf16``
            autocast); ``auto`` is the file's own.
        sidecar: the model's sidecar JSON, when it is not beside the model file.
        verify_sidecar: refuse a sidecar whose recorded sha256 does not match the model.
        plugin: the TopKGate plugin library (TensorRT; default: searched).
        input_size: ``(H, W)`` the network takes, for a checkpoint (an exported model fixes its own).
        variant: the architecture of a bare checkpoint state_dict.
        batch: frames per engine call (default: the model's static batch, else all frames of a call).
        threads: CPU threads of the backend.
        cuda_graph: replay the engine as a CUDA graph (TensorRT).
        prepost: where pre/post-processing runs (``auto``, ``gpu``, ``cpu``).
    """

    path: Path = option(flag="--model", parse=Path, required=True, metavar="PATH", group=MODEL,
                        help="the model: a TensorRT plan (.plan/.engine), an ONNX file (with its .onnx.json sidecar) "
                             "or a checkpoint (.pth, with --input-size)")
    backend: str = option("auto", flag="--backend", choices=("auto", *backend_names()), group=MODEL,
                          default_text="from the file's extension", help="inference backend")
    device: str = option("auto", flag="--device", parse=device_arg, metavar=DEVICE_METAVAR, group=MODEL,
                         default_text="auto: a GPU when the backend can use one here, else the CPU",
                         help="where the model runs (N means cuda:N)")
    precision: str = option("auto", flag="--precision", choices=PRECISIONS, group=MODEL,
                            default_text="auto: the file's own; FP32 for a checkpoint; openvino: BF16 where the CPU "
                                         "has it",
                            help="precision to run in, where the backend chooses (a checkpoint: fp16/bf16 autocast)")
    sidecar: Path | None = option(None, flag="--sidecar", parse=Path, metavar="JSON", group=MODEL,
                                  default_text="<model>.onnx.json beside the model",
                                  help="the model's sidecar, when it is not beside the model")
    verify_sidecar: bool = option(True, flag="--no-verify-sidecar", group=MODEL,
                                  help="accept a sidecar whose recorded sha256 does not match the model (only for "
                                       "files edited on purpose)")
    plugin: Path | None = option(None, flag="--plugin", parse=Path, metavar="LIB", group=MODEL,
                                 default_text="searched", help="TensorRT: the TopKGate plugin library")
    input_size: tuple[int, int] | None = option(None, flag="--input-size", parse=hw_arg, metavar="HxW", group=MODEL,
                                                default_text="", help="network input size of a checkpoint")
    variant: str | None = variant_option(MODEL, "architecture of a checkpoint that does not record it (a bare "
                                               "state_dict)")
    batch: int | None = option(None, flag="--batch", parse=positive_int_arg, metavar="N", group=MODEL,
                               default_text="the model's static batch, else every frame of a call",
                               help="frames per engine call")
    threads: int | None = option(None, flag="--threads", parse=positive_int_arg, metavar="N", group=MODEL,
                                 default_text="the backend's choice", help="CPU threads of the backend")
    cuda_graph: bool = option(False, flag="--cuda-graph", group=MODEL,
                              help="TensorRT: replay the engine as a CUDA graph")
    prepost: str = option("auto", flag="--prepost", choices=PREPOST_PLACES, group=MODEL,
                          default_text="auto: the GPU when the backend has GPU kernels",
                          help="where frames are pre- and post-processed")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        for name in ("sidecar", "plugin"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        try:
            object.__setattr__(self, "device", parse_device(self.device))
        except ValueError as exc:
            raise ModelSpecError(f"--device: {exc}") from None
        for name, value in (("--batch", self.batch), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise ModelSpecError(f"{name} must be at least 1, got {value}")
        if self.precision not in PRECISIONS:
            raise ModelSpecError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.prepost not in PREPOST_PLACES:
            raise ModelSpecError(f"--prepost must be one of {', '.join(PREPOST_PLACES)}, got {self.prepost!r}")

    @classmethod
    def of(cls, model: ModelSpec | str | os.PathLike[str], **fields: Any) -> ModelSpec:
        """``model`` itself (with ``fields`` replaced), or a spec of the model file ``model`` with ``fields``."""
        if isinstance(model, ModelSpec):
            return dataclasses.replace(model, **fields) if fields else model
        return cls(path=Path(model), **fields)

    def non_defaults(self) -> dict[str, Any]:
        """The fields set to something else than their default, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "path" and getattr(self, f.name) != field_default(f)}

    def backend_class(self) -> type[Backend]:
        """The backend that opens this model, after checking that it honours every field set.

        Raises:
            ModelSpecError: a field the backend would ignore (named by its flag), a device or a
                precision it cannot run on, GPU pre/post where it has no GPU kernels.
        """
        cls = resolve_backend(self.path, self.backend)
        flags = {f.name: spec.flag for f, spec in declared_flags(ModelSpec)}
        for name in self.non_defaults():
            if name not in COMMON_FIELDS and name not in cls.OPTIONS:
                takers = [b for b in backend_names() if name in backend_class(b).OPTIONS]
                raise ModelSpecError(f"{flags[name]} does not apply to {self.path.name}, which opens with the "
                                     f"{cls.NAME} backend; it applies to {', '.join(takers) or 'no backend'}: drop it")
        kind = "cpu" if self.device == "cpu" else "cuda"
        if self.device != "auto" and kind not in cls.DEVICES:
            raise ModelSpecError(f"the {cls.NAME} backend runs on {' or '.join(sorted(cls.DEVICES))}, not "
                                 f"{self.device}; pass --device {'cuda:0' if 'cuda' in cls.DEVICES else 'cpu'}")
        if self.precision not in cls.PRECISIONS:
            raise ModelSpecError(f"the {cls.NAME} backend runs {self.path.name} in "
                                 f"{' or '.join(cls.PRECISIONS)}, not --precision {self.precision}"
                                 + ("" if len(cls.PRECISIONS) > 1 else "; an exported file fixes its precision: "
                                    "export or pick the file of that precision (fornet_fp16.onnx, fornet_int8.onnx)"))
        if self.prepost == "gpu" and not cls.GPU_PREPOST:
            raise ModelSpecError(f"--prepost gpu: the {cls.NAME} backend has no GPU pre/post kernels; use --prepost "
                                 "auto or cpu")
        return cls

