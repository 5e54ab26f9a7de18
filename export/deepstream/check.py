"""Check a DeepStream package here: GLib parses every config with nvinfer's typed semantics, every key is a
documented one, and nvinfer's whole path (scale, offsets, colour format, the graph on ONNX Runtime, then
nvinfer's segmentation parser with its threshold and -1 class, which the package's GPU library applies too,
or the labels form's class map) gives the labels the project's own preprocessing and Segmenter give on the
same frame.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from fornet.export.deepstream import glib_keyfile
from fornet.export.deepstream.graph import CLASS_MAP, PROBABILITIES
from fornet.export.deepstream.parser import UNLABELLED, parse_segmentation
from fornet.export.deepstream.schema import DEEPSTREAM_APP_SCHEMA, NVINFER_SCHEMA
from fornet.export.errors import ExportError
from fornet.runtime.segmenter import Segmenter

#: The Python that has GLib's bindings (python3-gi) when this environment has not; override with $FORNET_GI_PYTHON.
SYSTEM_PYTHON = "/usr/bin/python3"
_READER = Path(__file__).with_name("glib_keyfile.py")


def read_key_file(path: Path, schema: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """The typed values of a key file, read by GLib; :class:`ExportError` listing unknown keys and bad values."""
    if importlib.util.find_spec("gi") is not None:
        result = glib_keyfile.read_key_file(str(path), schema)
    else:
        python = os.environ.get("FORNET_GI_PYTHON", SYSTEM_PYTHON)
        try:
            done = subprocess.run([python, str(_READER), str(path), json.dumps(schema)], capture_output=True,
                                  text=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ExportError(f"cannot read {path} with GLib: {python} with python3-gi is needed (apt-get install "
                              f"python3-gi, or point $FORNET_GI_PYTHON at a Python that has gi): {exc}") from exc
        result = json.loads(done.stdout)
    if result["errors"]:
        raise ExportError(f"{path} is not a valid config:\n  " + "\n  ".join(result["errors"]))
    return dict(result["values"])


def nvinfer_input(frame: np.ndarray, prop: dict[str, Any]) -> np.ndarray:
    """The ``1 x 3 x H x W`` float planes nvinfer computes from a BGR frame of the network size."""
    pixels = frame if prop.get("model-color-format", 0) == 1 else frame[..., ::-1]
    offsets = np.asarray(prop.get("offsets", [0.0, 0.0, 0.0]), dtype=np.float32).reshape(3, 1, 1)
    planes = np.float32(prop.get("net-scale-factor", 1.0)) * (pixels.transpose(2, 0, 1).astype(np.float32) - offsets)
    return planes[None]


def nvinfer_output(config: Path, frame: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The config's ``[property]`` values and the output layer nvinfer gets for ``frame`` (one frame: no batch
    axis): the config's input path and ONNX graph, on ONNX Runtime."""
    import onnxruntime as ort

    prop = read_key_file(config, NVINFER_SCHEMA)["property"]
    dims = list(prop["infer-dims"])
    if dims != [3, *frame.shape[:2]]:
        raise ExportError(f"{config}: infer-dims {dims} differ from the frame size {frame.shape[:2]}")
    session = ort.InferenceSession(str(config.parent / prop["onnx-file"]), providers=["CPUExecutionProvider"])
    (output,) = session.run([prop["output-blob-names"]], {session.get_inputs()[0].name: nvinfer_input(frame, prop)})
    return prop, output[0]


def nvinfer_labels(config: Path, frame: np.ndarray) -> np.ndarray:
    """The ``H x W`` int32 labels nvinfer gives ``frame``: :func:`nvinfer_output`, then (``network-type=2``)
    nvinfer's segmentation parser, which gives -1 to a pixel no score of which passes ``segmentation-threshold``."""
    prop, output = nvinfer_output(config, frame)
    layer = prop["output-blob-names"]
    if prop["network-type"] == 100 and (layer not in (CLASS_MAP, PROBABILITIES) or prop.get("output-tensor-meta") != 1):
        raise ExportError(f"{config}: network-type=100 needs output-tensor-meta=1 and output {CLASS_MAP} (labels) "
                          f"or {PROBABILITIES} (labelled by the package's GPU library)")
    if prop["network-type"] == 2 or layer == PROBABILITIES:  # nvinfer's parser, or the GPU library's same rule
        return parse_segmentation(output, prop.get("segmentation-threshold", 0.0),
                                  prop.get("segmentation-output-order", 0))
    return output.astype(np.int32)


def check_deepstream_package(folder: Path, source_onnx: Path, frames: list[np.ndarray]) -> list[str]:
    """Check every config of ``folder``; return the config names; :class:`ExportError` on the first problem.

    ``frames`` are BGR frames of the network size; for each config, nvinfer's path (input, graph,
    segmentation parser) must give the same labels as the Segmenter on ``source_onnx`` (the project's
    preprocessing), and no pixel may be left unlabelled.
    """
    configs = sorted(folder.glob("config_infer_*.txt"))
    if not configs:
        raise ExportError(f"{folder} has no config_infer_*.txt; write one with `fornet export --deepstream`")
    with Segmenter(source_onnx, device="cpu") as segmenter:
        expected = [segmenter(frame) for frame in frames]
        classes = len(segmenter.classes)
    for config in configs:
        for frame, labels in zip(frames, expected, strict=True):
            got = nvinfer_labels(config, frame)
            unlabelled = float(np.mean(got == UNLABELLED))
            if unlabelled:
                raise ExportError(f"{config.name}: nvinfer's segmentation parser leaves {unlabelled:.1%} of the "
                                  "pixels unlabelled (-1): none of their scores exceeds segmentation-threshold; "
                                  "the scores graph must end in Softmax (write the package again with this "
                                  "fornet export)")
            if not np.array_equal(got, labels):
                share = float(np.mean(got != labels))
                raise ExportError(f"{config.name}: the nvinfer input path gives other labels than the project's "
                                  f"preprocessing on {share:.1%} of the pixels; check net-scale-factor, offsets "
                                  "and model-color-format")
        prop = read_key_file(config, NVINFER_SCHEMA)["property"]
        names = (config.parent / prop["labelfile-path"]).read_text(encoding="utf-8").splitlines()
        if len(names) != classes:
            raise ExportError(f"{prop['labelfile-path']} has {len(names)} names for {classes} classes")
    app = folder / "deepstream_app_config.txt"
    app_values = read_key_file(app, DEEPSTREAM_APP_SCHEMA)
    gie = app_values["primary-gie"]["config-file"]
    if not (folder / gie).is_file():
        raise ExportError(f"{app.name}: primary-gie config-file {gie} is not in the package")
    return [config.name for config in configs] + [app.name]

