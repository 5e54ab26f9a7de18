"""``fornet export --triton REPO``: a Triton Inference Server model repository for an exported FoR-Net.

Models written (each ``<repo>/<model>/config.pbtxt`` + ``1/<file>``):

* ``fornet_onnx``: ``onnxruntime_onnx`` on the ONNX file (CPU or GPU instances); the TopKGate is a
  model-local function, so ONNX Runtime needs no library.
* ``fornet_trt``: ``tensorrt_plan`` on a plan (only when one is given; dims and dtypes from its
  metadata); the plugin library, when the plan uses it, is loaded with
  ``--backend-config=tensorrt,plugins=...`` (written in the README's command).
* ``fornet``: the Python-backend model (uint8 BGR frames in, labels out at the frame size) that
  ``fornet serve`` also runs, on the copied ONNX file.

Dynamic batching when the batch is dynamic, a bounded queue, and a README with the exact
``tritonserver`` command. The repository is built in a staging folder and renamed into place.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fornet.contract import MASKS_NAME
from fornet.export.errors import ExportError
from fornet.export.staging import staged_folder
from fornet.export.triton.config import INSTANCE_KINDS, TENSORRT_TO_TRITON, ModelConfig, TensorConfig, triton_dtype
from fornet.export.triton.plan_io import PlanIO, PlanTensor, read_plan_io
from fornet.export.triton.python_model import MODEL_PY
from fornet.runtime.model_io import ModelIO, ModelSidecar, read_sidecar
from fornet.runtime.serving.contract import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    DEFAULT_QUEUE_DELAY_US,
    FRAMES,
    LABELS,
    MODEL_NAME,
    served_max_batch,
)

ONNX_MODEL = "fornet_onnx"
PLAN_MODEL = "fornet_trt"
PYTHON_MODEL = MODEL_NAME
VERSION = "1"
#: The kind of package written (its ``.fornet-package.json`` marker; see :mod:`fornet.export.staging`).
PACKAGE_KIND = "Triton model repository"


@dataclass(frozen=True)
class TritonRepositoryOptions:
    """How to configure the repository's models.

    Attributes:
        onnx_instance: ``"cpu"`` or ``"gpu"`` instances of the ONNX Runtime model.
        instances: instances per model.
        max_batch: largest batch for a dynamic-batch model.
        max_queue: queued requests beyond it are refused.
        queue_delay_us: batcher wait to fill a batch.
        plan: a TensorRT plan (with its ``.json`` metadata) to add as ``fornet_trt``.
        overwrite: replace an existing repository (only once the new one is complete).
    """

    onnx_instance: str = "gpu"
    instances: int = 1
    max_batch: int = DEFAULT_MAX_BATCH
    max_queue: int = DEFAULT_MAX_QUEUE
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    plan: Path | None = None
    overwrite: bool = False

    def validate(self) -> None:
        """Raise :class:`ExportError` for values that cannot work."""
        if self.onnx_instance not in INSTANCE_KINDS:
            raise ExportError(f"unknown instance kind {self.onnx_instance!r}; choose cpu or gpu")
        if self.instances < 1 or self.max_batch < 1 or self.max_queue < 1 or self.queue_delay_us < 0:
            raise ExportError("instances, max batch and max queue must be at least 1, the queue delay at least 0")
        if self.plan is not None and not self.plan.is_file():
            raise ExportError(f"plan not found: {self.plan}; build it with `fornet build` or fix the path")


def _batching(options: TritonRepositoryOptions, batch: int | None) -> dict[str, object]:
    if batch is None:
        return {"max_batch_size": options.max_batch, "dynamic_batching": True, "queue_delay_us": options.queue_delay_us,
                "max_queue_size": options.max_queue}
    return {"max_batch_size": 0}


def onnx_model_config(io: ModelIO, options: TritonRepositoryOptions) -> ModelConfig:
    """``fornet_onnx``: dims and dtypes from the ONNX sidecar (the batch dim folded into ``max_batch_size``)."""
    h, w = io.input_size
    out_dims: tuple[int, ...] = (h, w) if io.labels_output else (io.num_classes, h, w)
    in_dims = io.input_shape(1)[1:]
    if io.batch is not None:
        in_dims, out_dims = (io.batch, *in_dims), (io.batch, *out_dims)
    return ModelConfig(
        name=ONNX_MODEL, platform="onnxruntime_onnx",
        inputs=(TensorConfig(io.input_name, triton_dtype(io.input_dtype), in_dims),),
        outputs=(TensorConfig(io.output_name, triton_dtype(io.output_dtype), out_dims),),
        instance_kind=INSTANCE_KINDS[options.onnx_instance], instance_count=options.instances,
        **_batching(options, io.batch),  # type: ignore[arg-type]
    )


def plan_model_config(plan: PlanIO, options: TritonRepositoryOptions) -> ModelConfig:
    """``fornet_trt``: dims and dtypes from the plan's metadata; a dynamic batch up to the profile's maximum."""
    tensors = [*plan.inputs, *plan.outputs]
    dynamic = all(t.shape[0] == -1 for t in tensors)
    profile_max = min((t.max_shape[0] for t in plan.inputs if t.max_shape), default=options.max_batch)

    def config(tensor: PlanTensor) -> TensorConfig:
        if tensor.dtype not in TENSORRT_TO_TRITON:
            raise ExportError(f"plan tensor {tensor.name} has dtype {tensor.dtype}, which Triton cannot take")
        dims = tensor.shape[1:] if dynamic else tensor.shape
        return TensorConfig(tensor.name, TENSORRT_TO_TRITON[tensor.dtype], dims)

    batching = _batching(options, None if dynamic else 1)
    if dynamic:
        batching["max_batch_size"] = min(options.max_batch, profile_max)
    return ModelConfig(
        name=PLAN_MODEL, platform="tensorrt_plan", inputs=tuple(config(t) for t in plan.inputs),
        outputs=tuple(config(t) for t in plan.outputs if t.name != MASKS_NAME), instance_kind="KIND_GPU",
        instance_count=options.instances, **batching,  # type: ignore[arg-type]
    )


def python_model_config(io: ModelIO, model_file: str, options: TritonRepositoryOptions) -> ModelConfig:
    """``fornet``: frames in, labels out, as ``fornet serve`` serves them."""
    return ModelConfig(
        name=PYTHON_MODEL, backend="python", max_batch_size=served_max_batch(io.batch, options.max_batch),
        inputs=(TensorConfig(FRAMES, "TYPE_UINT8", (-1, -1, 3)),),
        outputs=(TensorConfig(LABELS, "TYPE_UINT8", (-1, -1)),),
        dynamic_batching=True, queue_delay_us=options.queue_delay_us, max_queue_size=options.max_queue,
        instance_kind=INSTANCE_KINDS[options.onnx_instance], instance_count=options.instances,
        parameters={"model_file": model_file, "device": "0" if options.onnx_instance == "gpu" else "cpu"},
    )


def _write_model(repo: Path, config: ModelConfig, files: dict[str, Path | str]) -> None:
    folder = repo / config.name / VERSION
    folder.mkdir(parents=True)
    (repo / config.name / "config.pbtxt").write_text(config.render(), encoding="utf-8")
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy2(content, folder / name)
        else:
            (folder / name).write_text(content, encoding="utf-8")


def readme(repo_name: str, plan: PlanIO | None) -> str:
    """The repository's README: the models and the exact ``tritonserver`` command."""
    plugin = plan.plugin_library if plan else None
    backend_config = f' \\\n    --backend-config=tensorrt,plugins="/path/to/{plugin}"' if plugin else ""
    trt = (f"| `{PLAN_MODEL}` | tensorrt_plan | the TensorRT plan (GPU; built for one GPU and TensorRT version) |\n"
           if plan else "")
    plugin_note = (f"The plan uses the TopKGate plugin: give tritonserver the `{plugin}` built against the server's "
                   "TensorRT (`fornet build-plugin`) with `--backend-config` as above, or `LD_PRELOAD` it.\n\n"
                   if plugin else "")
    return f"""# Triton model repository for FoR-Net

Written by `fornet export --triton`. Models:

| model | platform / backend | serves |
| --- | --- | --- |
| `{ONNX_MODEL}` | onnxruntime_onnx | the ONNX file as exported (network input and output tensors) |
{trt}| `{PYTHON_MODEL}` | python | uint8 BGR frames `{FRAMES}` [N, H, W, 3] -> `{LABELS}` [N, H, W] at the frame size |

Start Triton Inference Server (e.g. the `nvcr.io/nvidia/tritonserver:<yy.mm>-py3` container) with:

```sh
tritonserver --model-repository="$(pwd)/{repo_name}"{backend_config}
```

{plugin_note}The ONNX model needs no library: the TopKGate is a model-local ONNX function that ONNX Runtime
expands. The `{PYTHON_MODEL}` model imports fornet-deploy: install it into the Python that Triton's
Python backend runs (`pip install --no-deps fornet-deploy onnxruntime opencv-python-headless pydantic`
with numpy<2), or run `fornet serve MODEL` instead, which sets that environment up for you.
Health: `GET /v2/health/ready`; metrics: `GET :8002/metrics`.
"""


def write_triton_repository(onnx_path: str | Path, repo: str | Path,
                            options: TritonRepositoryOptions | None = None) -> Path:
    """Write the repository for ``onnx_path`` (and ``options.plan``) at ``repo``; return ``repo``.

    Raises:
        ExportError: ``repo`` exists (without ``overwrite``, or is not a repository this function wrote), a
            missing model file or sidecar, or a plan without metadata.
    """
    options = options or TritonRepositoryOptions()
    options.validate()
    onnx_path, repo = Path(onnx_path), Path(repo)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX file not found: {onnx_path}; export it first with `fornet export`")
    sidecar = ModelSidecar.path_for(onnx_path)
    io = read_sidecar(sidecar)
    plan = read_plan_io(options.plan) if options.plan is not None else None
    with staged_folder(repo, PACKAGE_KIND, options.overwrite) as staging:
        _write_model(staging, onnx_model_config(io, options), {"model.onnx": onnx_path})
        if plan is not None and options.plan is not None:
            _write_model(staging, plan_model_config(plan, options),
                         {"model.plan": options.plan, "model.plan.json": Path(f"{options.plan}.json")})
        _write_model(staging, python_model_config(io, onnx_path.name, options),
                     {"model.py": MODEL_PY, onnx_path.name: onnx_path, sidecar.name: sidecar})
        (staging / "README.md").write_text(readme(repo.name, plan), encoding="utf-8")
    return repo
