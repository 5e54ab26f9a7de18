"""The nvinfer configuration of an exported FoR-Net, in both output forms, as GLib key-file text.

Normalisation is in the graph (see :mod:`fornet.export.deepstream.graph`), so nvinfer passes
pixel values through unchanged: ``net-scale-factor=1``, ``offsets=0;0;0``, and
``model-color-format`` gives the channel order the graph expects (0 RGB, 1 BGR).

Precision: nvinfer builds its engine from ``onnx-file`` as a weakly typed network with the
``network-mode`` builder flag, so under ``network-mode=2`` (FP16) TensorRT may run any layer in FP16,
the selector head and the Top-K gate included, whatever the ONNX's Casts say. An FP16 package
therefore names a strongly typed plan built on the device by ``fornet build`` as
``model-engine-file`` (nvinfer deserialises it and builds nothing; the precision is the ONNX's own).
FP32 and INT8 (Q/DQ) files build exactly under nvinfer's flags, so their ``model-engine-file`` is
the name nvinfer saves its own engine under.
"""

from __future__ import annotations

from dataclasses import dataclass

from fornet.export.deepstream.graph import CLASS_MAP, PROBABILITIES
from fornet.export.tensorrt.options import default_plan_path
from fornet.runtime.model_io import ModelIO

#: nvinfer ``network-mode`` per precision of the ONNX file nvinfer builds its engine from.
NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}
COLOR_FORMATS = {"RGB": 0, "BGR": 1}


#: The scores graph labelled on the GPU by the package's library (fornet_segmentation_meta.cpp) from a probe:
#: network-type=100 with the scores as tensor meta, on the scores form's ONNX file.
SCORES_GPU = "scores_gpu"


@dataclass(frozen=True)
class NvinferForm:
    """One config: its form (a graph form, or :data:`SCORES_GPU`), its ONNX file name and the lines that differ
    between the forms."""

    form: str
    onnx_file: str

    def keys(self, io: ModelIO) -> dict[str, str]:
        """The form-specific keys."""
        # probabilities are > 0 and the best one >= 1/C: threshold 0 labels every pixel with the argmax
        parser = {"output-blob-names": PROBABILITIES, "segmentation-output-order": "0",
                  "segmentation-threshold": "0.0", "num-detected-classes": str(io.num_classes)}
        if self.form == "scores":
            return {"network-type": "2", **parser}
        if self.form == SCORES_GPU:
            # the scores stay on the GPU (no host copy); the package's library labels them from a probe and
            # attaches NvDsInferSegmentationMeta with this threshold and order
            return {"network-type": "100", "output-tensor-meta": "1", "disable-output-host-copy": "1", **parser}
        return {"network-type": "100", "output-tensor-meta": "1", "output-blob-names": CLASS_MAP}


#: Precisions whose ONNX only a strongly typed build runs as exported (see the module docstring).
STRONGLY_TYPED_PRECISIONS = ("fp16",)


def engine_file_name(onnx_file: str, batch: int, precision: str, gpu_id: int = 0) -> str:
    """The ``model-engine-file`` of ``onnx_file``: for FP16 the plan ``fornet build --onnx onnx_file`` writes
    (strongly typed), else the name nvinfer gives the engine it builds (so later runs reuse it)."""
    if precision in STRONGLY_TYPED_PRECISIONS:
        return default_plan_path(onnx_file).name
    return f"{onnx_file}_b{batch}_gpu{gpu_id}_{precision}.engine"


def nvinfer_config(io: ModelIO, form: NvinferForm, *, precision: str, batch: int, plugin_library: str | None) -> str:
    """The ``config_infer_primary_fornet_<form>.txt`` text."""
    h, w = io.input_size
    keys = {
        "gpu-id": "0",
        "onnx-file": form.onnx_file,
        "model-engine-file": engine_file_name(form.onnx_file, batch, precision),
        "labelfile-path": "labels.txt",
        "batch-size": str(batch),
        "network-mode": str(NETWORK_MODES[precision]),
        "infer-dims": f"3;{h};{w}",
        "net-scale-factor": "1.0",
        "offsets": "0;0;0",
        "model-color-format": str(COLOR_FORMATS[io.channel_order]),
        "maintain-aspect-ratio": "0",
        "process-mode": "1",
        "gie-unique-id": "1",
        **form.keys(io),
    }
    if plugin_library is not None:
        keys["custom-lib-path"] = plugin_library
    header = (f"# nvinfer config for FoR-Net ({form.form} form), written by `fornet export --deepstream`.\n"
              "# Normalisation is inside the graph: net-scale-factor=1 and offsets=0 pass pixel values through.\n")
    return header + "[property]\n" + "".join(f"{key}={value}\n" for key, value in keys.items())
