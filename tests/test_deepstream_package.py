"""``fornet export --deepstream``: GLib parses every config with nvinfer's typed semantics, only documented keys,
and nvinfer's input path, graph and segmentation parser give the labels of the project's preprocessing."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fornet.export.deepstream.check import check_deepstream_package, nvinfer_labels, nvinfer_output, read_key_file
from fornet.export.deepstream.graph import nvinfer_graph
from fornet.export.deepstream.package import (
    DEEPSTREAM_ROOT,
    GPU_PARSER_LIBRARY,
    GPU_PARSER_SOURCE,
    GPU_PARSER_SOURCES,
    GPU_SCORES_CONFIG,
    DeepStreamOptions,
    gpu_parser_build_command,
    write_deepstream_package,
)
from fornet.export.deepstream.parser import UNLABELLED, parse_segmentation
from fornet.export.deepstream.schema import DEEPSTREAM_APP_SCHEMA, NVINFER_SCHEMA
from fornet.export.errors import ExportError
from fornet.export.staging import MARKER_NAME, PackageMarker
from fornet.runtime.cuda.toolchain import find_nvcc
from tests.helpers.deepstream import awkward_scores, nvinfer_loop
from tests.helpers.gst_element import GST_ENV, NEEDS_GST_ENV
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import frames

REPO = Path(__file__).resolve().parent.parent
#: cudaErrorInvalidValue (driver_types.h), what the GPU parser returns for bad arguments.
CUDA_ERROR_INVALID_VALUE = 1
#: NvDsInferDataType (nvdsinfer.h): FLOAT, HALF, INT8, INT32.
INFER_FLOAT, INFER_HALF, INFER_INT8, INFER_INT32 = 0, 1, 2, 3
#: FornetSegmentationStatus (fornet_segmentation.h).
SEG_OK, SEG_UNSUPPORTED_DATA_TYPE, SEG_BAD_DIMS, SEG_BAD_ORDER, SEG_CLASS_MISMATCH = 0, 1, 2, 3, 4
SEG_BAD_ARGUMENT = 8


@pytest.fixture(scope="module")
def raw_logits(tmp_path_factory: pytest.TempPathFactory, lite: LiteExport) -> Path:
    """The lite checkpoint exported with raw BGR input and logits output (FP32, and FP16 beside it)."""
    from fornet.export import ExportOptions, IOFormat, export_onnx

    checkpoint = lite.checkpoint
    return export_onnx(checkpoint, tmp_path_factory.mktemp("raw-logits"), ExportOptions(
        input_size=INPUT_SIZE, gate="plugin", verify=False, progress=False, fp16=True,
        io=IOFormat(input="raw", channel_order="BGR"))).onnx_path


def test_both_forms_check_out(raw_logits: Path, tmp_path: Path) -> None:
    package = write_deepstream_package(raw_logits, tmp_path / "ds", DeepStreamOptions(uri="rtsp://camera/stream"))
    assert check_deepstream_package(package, raw_logits, frames(2, INPUT_SIZE, seed=7)) == [
        "config_infer_primary_fornet_labels.txt", "config_infer_primary_fornet_scores.txt",
        "config_infer_primary_fornet_scores_gpu.txt", "deepstream_app_config.txt"]
    scores = read_key_file(package / "config_infer_primary_fornet_scores.txt", NVINFER_SCHEMA)["property"]
    labels = read_key_file(package / "config_infer_primary_fornet_labels.txt", NVINFER_SCHEMA)["property"]
    assert (scores["network-type"], scores["segmentation-output-order"], scores["net-scale-factor"]) == (2, 0, 1.0)
    assert (labels["network-type"], labels["output-tensor-meta"]) == (100, 1)
    assert scores["model-color-format"] == 1 and scores["offsets"] == [0.0, 0.0, 0.0]
    assert scores["infer-dims"] == [3, *INPUT_SIZE]
    assert scores["custom-lib-path"] == "libfornet_plugins.so"  # the export's gate is the plugin node
    app = read_key_file(package / "deepstream_app_config.txt", DEEPSTREAM_APP_SCHEMA)
    assert app["source0"]["uri"] == "rtsp://camera/stream" and app["segvisual"]["enable"] == 1
    assert len((package / "labels.txt").read_text().splitlines()) == 19
    compile((package / "fornet_probe.py").read_text(), "fornet_probe.py", "exec")


def test_labels_export_gives_the_labels_form_only(lite: LiteExport, tmp_path: Path) -> None:
    source = lite.raw_labels
    package = write_deepstream_package(source, tmp_path / "ds")
    assert check_deepstream_package(package, source, frames(1, INPUT_SIZE, seed=8)) == [
        "config_infer_primary_fornet_labels.txt", "deepstream_app_config.txt"]
    assert not any((package / name).exists() for name in GPU_PARSER_SOURCES)
    assert "--gpu-parser" not in (package / "README.md").read_text()


@pytest.mark.fault
def test_gpu_parser_probe_refuses_a_labels_only_package(lite: LiteExport, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--gpu-parser needs the scores form: a labels-only package's probe says so before starting GStreamer."""
    package = write_deepstream_package(lite.raw_labels, tmp_path / "ds")
    probe = runpy.run_path(str(package / "fornet_probe.py"), run_name="fornet_probe")
    assert probe["GPU_CONFIG"] is None
    with pytest.raises(SystemExit) as exited:
        probe["main"](["--gpu-parser", "file:///v.mp4"])
    assert exited.value.code == 2
    assert "this package has no scores form (exported with --output labels)" in capsys.readouterr().err


def test_wrong_colour_format_fails_the_numeric_check(raw_logits: Path, tmp_path: Path) -> None:
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    config = package / "config_infer_primary_fornet_scores.txt"
    config.write_text(config.read_text().replace("model-color-format=1", "model-color-format=0"))
    with pytest.raises(ExportError, match="other labels than the project's preprocessing"):
        check_deepstream_package(package, raw_logits, frames(1, INPUT_SIZE, seed=9))


@pytest.mark.parametrize(("line", "message"), [
    ("net-scale-factr=1.0", "net-scale-factr: not a documented key"),
    ("batch-size=one", "batch-size: not a valid int"),
])
def test_key_file_mistakes_are_reported(raw_logits: Path, tmp_path: Path, line: str, message: str) -> None:
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    config = package / "config_infer_primary_fornet_labels.txt"
    config.write_text(config.read_text().replace("batch-size=1\n", "") + line + "\n")
    with pytest.raises(ExportError, match=message):
        read_key_file(config, NVINFER_SCHEMA)


def test_normalised_input_export_is_refused(lite: LiteExport, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="--input raw"):
        write_deepstream_package(lite.onnx, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_existing_folder_is_refused(raw_logits: Path, tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already exists; choose a new folder, or pass --replace-packages"):
        write_deepstream_package(raw_logits, tmp_path / "ds")
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["mine.txt"]


@pytest.mark.fault
def test_replacing_only_replaces_a_package_of_the_same_kind(raw_logits: Path, tmp_path: Path) -> None:
    """``overwrite`` (``--replace-packages``) removes the whole folder: only one fornet-deploy wrote is replaced."""
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ExportError, match=r"is not a DeepStream package written by fornet export .*not replaced"):
        write_deepstream_package(raw_logits, mine, DeepStreamOptions(overwrite=True))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    other = tmp_path / "other"
    PackageMarker("Triton model repository").save(other / MARKER_NAME)
    with pytest.raises(ExportError, match="holds a Triton model repository, not a DeepStream package"):
        write_deepstream_package(raw_logits, other, DeepStreamOptions(overwrite=True))
    assert [p.name for p in other.iterdir()] == [MARKER_NAME]
    package = write_deepstream_package(raw_logits, tmp_path / "ds", DeepStreamOptions())
    (package / "labels.txt").write_text("stale")
    write_deepstream_package(raw_logits, package, DeepStreamOptions(overwrite=True))
    assert (package / "labels.txt").read_text() != "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "other", "project"]  # no staging folder left



@pytest.mark.parametrize("threshold", [0.0, 0.5, -3.0])
def test_parser_emulation_is_nvinfers_loop(threshold: float) -> None:
    scores = awkward_scores(5, 12, 16, seed=4)
    expected = nvinfer_loop(scores, threshold)
    assert np.array_equal(parse_segmentation(scores, threshold), expected)
    assert np.array_equal(parse_segmentation(scores.transpose(1, 2, 0), threshold, order=1), expected)
    assert (expected == UNLABELLED).any() and (expected >= 0).any()


def _best_logits(onnx_path: Path, frame: np.ndarray) -> np.ndarray:
    """The largest logit of each pixel of a raw BGR ``frame`` (H x W) on ONNX Runtime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {session.get_inputs()[0].name: frame[None]})
    return logits[0].max(axis=0)


@pytest.fixture(scope="module")
def street_frame() -> np.ndarray:
    """A generated street scene of the network size, BGR."""
    from fornet.export.verify import load_images

    return load_images(INPUT_SIZE, 1, seed=5)[0][..., ::-1].copy()


@pytest.fixture(scope="module")
def unsure_logits(tmp_path_factory: pytest.TempPathFactory, lite: LiteExport, raw_logits: Path,
                  street_frame: np.ndarray) -> Path:
    """A raw-input export whose best logit is <= 0 on about half the pixels of ``street_frame``: the lite model with
    its classifier biases lowered by the median best logit (the argmax, so Segmenter's labels, is unchanged)."""
    import torch

    from fornet.export import ExportOptions, IOFormat, export_onnx
    from fornet.model import load_model, save_checkpoint

    shift = float(np.median(_best_logits(raw_logits, street_frame)))
    model = load_model(lite.checkpoint)
    with torch.no_grad():
        model.classifier.bias -= shift
    folder = tmp_path_factory.mktemp("unsure")
    save_checkpoint(folder / "unsure.pth", model, "lite")
    return export_onnx(folder / "unsure.pth", folder, ExportOptions(
        input_size=INPUT_SIZE, gate="plugin", verify=False, progress=False,
        io=IOFormat(input="raw", channel_order="BGR"))).onnx_path


def test_pixels_whose_logits_are_all_negative_keep_their_class(unsure_logits: Path, street_frame: np.ndarray,
                                                               tmp_path: Path) -> None:
    """The scores graph ends in Softmax: nvinfer's parser (threshold 0, -1 class) gives Segmenter's labels
    even where every logit is negative."""
    from fornet.runtime.segmenter import Segmenter

    negative = _best_logits(unsure_logits, street_frame) <= 0
    assert 0.1 < negative.mean() < 0.9  # the frame has such pixels, and others
    package = write_deepstream_package(unsure_logits, tmp_path / "ds")
    assert check_deepstream_package(package, unsure_logits, [street_frame])[0] == (
        "config_infer_primary_fornet_labels.txt")
    with Segmenter(unsure_logits, device="cpu") as segmenter:
        expected = segmenter(street_frame)
    got = nvinfer_labels(package / "config_infer_primary_fornet_scores.txt", street_frame)
    assert np.array_equal(got, expected) and not (got == UNLABELLED).any()


@pytest.mark.fault
def test_a_raw_logits_scores_graph_fails_the_parser_check(unsure_logits: Path, street_frame: np.ndarray,
                                                         tmp_path: Path) -> None:
    """The package as it was (raw logits, threshold 0): nvinfer labels the negative pixels -1; the check says so."""
    import onnx

    package = write_deepstream_package(unsure_logits, tmp_path / "ds")
    graph_path = package / "fornet_scores.onnx"
    model = onnx.load(str(graph_path))
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    model.graph.node.remove(softmax)
    model.graph.output[0].name = softmax.input[0]
    onnx.save(model, str(graph_path))
    config = package / "config_infer_primary_fornet_scores.txt"
    config.write_text(config.read_text().replace("output-blob-names=probabilities",
                                                 f"output-blob-names={softmax.input[0]}"))
    got = nvinfer_labels(config, street_frame)
    assert np.array_equal(got == UNLABELLED, _best_logits(unsure_logits, street_frame) <= 0)
    with pytest.raises(ExportError, match=r"leaves \d+\.\d% of the pixels unlabelled \(-1\).*end in Softmax"):
        check_deepstream_package(package, unsure_logits, [street_frame])


def test_graphs_hold_no_uint8_tensor_tensorrt_refuses(raw_logits: Path, lite: LiteExport, tmp_path: Path) -> None:
    """TensorRT's ONNX parser refuses an intermediate UINT8 tensor: the nvinfer input feeds the export's Casts,
    and uint8 labels become the int32 class map in the export's own Cast."""
    import onnx

    from fornet.export.tensorrt.graph_rules import uint8_violations

    scores_package = write_deepstream_package(raw_logits, tmp_path / "scores")
    labels_package = write_deepstream_package(lite.raw_labels, tmp_path / "labels")
    for graph in [*scores_package.glob("*.onnx"), *labels_package.glob("*.onnx")]:
        assert uint8_violations(onnx.load(str(graph))) == [], graph.name
    assert check_deepstream_package(labels_package, lite.raw_labels, frames(1, INPUT_SIZE, seed=3))


@pytest.mark.parametrize(("target", "enc_type"), [(None, 0), ("orin-nano-8gb", 1), ("orin-nano-4gb", 1),
                                                  ("agx-orin-64gb", 0)])
def test_modules_without_nvenc_encode_in_software(raw_logits: Path, tmp_path: Path, target: str | None,
                                                  enc_type: int) -> None:
    package = write_deepstream_package(raw_logits, tmp_path / "ds", DeepStreamOptions(target=target))
    app = read_key_file(package / "deepstream_app_config.txt", DEEPSTREAM_APP_SCHEMA)
    assert app["sink0"]["enc-type"] == enc_type


def test_unknown_target_is_refused(raw_logits: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown target 'orin-nano'; choose one of orin-nano-4gb"):
        write_deepstream_package(raw_logits, tmp_path / "ds", DeepStreamOptions(target="orin-nano"))
    assert not (tmp_path / "ds").exists()


def test_fp16_package_names_strongly_typed_plans(raw_logits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """nvinfer builds weakly typed: an FP16 package names the plans `fornet build` builds strongly typed, and its
    README's commands are valid `fornet build` command lines in the package folder."""
    from fornet.cli import build

    fp16 = raw_logits.with_name("fornet_fp16.onnx")
    package = write_deepstream_package(fp16, tmp_path / "ds")
    assert check_deepstream_package(package, fp16, frames(1, INPUT_SIZE, seed=6))
    for form in ("scores", "labels"):
        prop = read_key_file(package / f"config_infer_primary_fornet_{form}.txt", NVINFER_SCHEMA)["property"]
        assert (prop["network-mode"], prop["model-engine-file"]) == (2, f"fornet_{form}.plan")
    commands = [line for line in (package / "README.md").read_text().splitlines() if line.startswith("fornet-build")]
    assert len(commands) == 2
    monkeypatch.chdir(package)
    for command in commands:
        argv = shlex.split(command)[1:]
        assert argv[argv.index("--plugin") + 1] == "libfornet_plugins.so"
        assert build.main([*argv, "--print-commands"]) == 0
        assert "--stronglyTyped" in capsys.readouterr().out
    fp32 = read_key_file(write_deepstream_package(raw_logits, tmp_path / "fp32") /
                         "config_infer_primary_fornet_scores.txt", NVINFER_SCHEMA)["property"]
    assert fp32["model-engine-file"] == "fornet_scores.onnx_b1_gpu0_fp32.engine"


@pytest.mark.parametrize(("machine", "memory"), [("x86_64", " nvbuf-memory-type=3"), ("aarch64", "")])
def test_probe_maps_unified_memory_on_dgpu(raw_logits: Path, tmp_path: Path, machine: str, memory: str) -> None:
    """dGPU DeepStream: nvstreammux and nvvideoconvert allocate unified memory, the only NVMM memory a probe maps."""
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    probe = runpy.run_path(str(package / "fornet_probe.py"), run_name="fornet_probe")
    description = probe["pipeline_description"]("file:///v.mp4", machine)
    assert f"nvstreammux name=m batch-size=1 width=1920 height=1080{memory} !" in description
    assert f"! nvvideoconvert{memory} ! video/x-raw(memory:NVMM),format=RGBA" in description


# --------------------------------------------------------------- nvinfer's parser on the GPU (host reference)

@pytest.fixture(scope="module")
def gpu_parser(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """``segmentation_argmax.cu`` with its host reference (the kernel's per-pixel code on the CPU), built by nvcc."""
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found ($CUDACXX, PATH, /usr/local/cuda/bin/nvcc)")
    library = tmp_path_factory.mktemp("gpu-parser") / "libfornet_segmentation_argmax_host.so"
    done = subprocess.run([str(nvcc), "-std=c++17", "--Werror", "all-warnings", "-shared", "-Xcompiler", "-fPIC",
                           "-O2", "-arch=sm_87", "-DFORNET_SEGMENTATION_ARGMAX_HOST_REFERENCE", str(GPU_PARSER_SOURCE),
                           "-o", str(library)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return ctypes.CDLL(str(library))


def _gpu_parse(lib: ctypes.CDLL, scores: np.ndarray, threshold: float, order: int = 0) -> np.ndarray:
    """Labels of ``B x C x H x W`` (order 0) or ``B x H x W x C`` (order 1) scores through the host reference."""
    scores = np.ascontiguousarray(scores)
    batch, height, width = (scores.shape[0], *scores.shape[2:]) if order == 0 else scores.shape[:3]
    classes = scores.shape[1] if order == 0 else scores.shape[3]
    labels = np.full((batch, height, width), 99, dtype=np.int32)
    status = lib.fornet_segmentation_argmax_host(
        ctypes.c_void_p(scores.ctypes.data), {np.float32: 0, np.float16: 1}[scores.dtype.type], batch, classes,
        height, width, order, ctypes.c_float(threshold), ctypes.c_void_p(labels.ctypes.data))
    assert status == 0
    return labels


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("threshold", [0.0, 0.5, -3.0])
def test_gpu_parser_is_nvinfers_loop(gpu_parser: ctypes.CDLL, dtype: type, threshold: float) -> None:
    """Ties, scores below -1, NaN, both layouts, a batch of two frames, FP32 and FP16 scores."""
    batch = np.stack([awkward_scores(6, 10, 14, seed) for seed in (1, 2)]).astype(dtype)
    expected = np.stack([nvinfer_loop(frame.astype(np.float32), threshold) for frame in batch])
    assert np.array_equal(_gpu_parse(gpu_parser, batch, threshold), expected)
    assert np.array_equal(_gpu_parse(gpu_parser, batch.transpose(0, 2, 3, 1), threshold, order=1), expected)


def test_gpu_parser_labels_the_package_scores_like_segmenter(gpu_parser: ctypes.CDLL, unsure_logits: Path,
                                                             street_frame: np.ndarray, tmp_path: Path) -> None:
    """On the package's scores for a street scene (best logit negative on half the pixels): Segmenter's labels."""
    from fornet.runtime.segmenter import Segmenter

    package = write_deepstream_package(unsure_logits, tmp_path / "ds")
    assert (package / "fornet_segmentation_argmax.cu").read_bytes() == GPU_PARSER_SOURCE.read_bytes()
    prop, probabilities = nvinfer_output(package / "config_infer_primary_fornet_scores.txt", street_frame)
    with Segmenter(unsure_logits, device="cpu") as segmenter:
        expected = segmenter(street_frame)
    labels = _gpu_parse(gpu_parser, probabilities[None], prop["segmentation-threshold"])[0]
    assert np.array_equal(labels, expected)


@pytest.mark.fault
@pytest.mark.parametrize(("dtype", "classes", "order", "null"), [(2, 3, 0, False), (0, 0, 0, False),
                                                                  (0, 3, 2, False), (0, 3, 0, True)])
def test_gpu_parser_refuses_bad_arguments(gpu_parser: ctypes.CDLL, dtype: int, classes: int, order: int,
                                          null: bool) -> None:
    scores = np.zeros((3, 4, 4), np.float32)
    labels = np.full((4, 4), 7, np.int32)
    status = gpu_parser.fornet_segmentation_argmax_host(
        ctypes.c_void_p(None if null else scores.ctypes.data), dtype, 1, classes, 4, 4, order, ctypes.c_float(0.0),
        ctypes.c_void_p(labels.ctypes.data))
    assert status == CUDA_ERROR_INVALID_VALUE and (labels == 7).all()


@pytest.mark.parametrize(("data_type", "dims", "order", "expected_classes", "status", "shape"), [
    (INFER_FLOAT, (19, 64, 128), 0, 19, SEG_OK, (0, 19, 64, 128)),
    (INFER_HALF, (64, 128, 19), 1, 0, SEG_OK, (1, 19, 64, 128)),
    (INFER_INT32, (64, 128, 1), 0, 0, SEG_UNSUPPORTED_DATA_TYPE, None),
    (INFER_INT8, (19, 64, 128), 0, 19, SEG_UNSUPPORTED_DATA_TYPE, None),
    (INFER_FLOAT, (1, 19, 64, 128), 0, 19, SEG_BAD_DIMS, None),
    (INFER_FLOAT, (19, 0, 128), 0, 19, SEG_BAD_DIMS, None),
    (INFER_FLOAT, (19, 64, 128), 2, 19, SEG_BAD_ORDER, None),
    (INFER_FLOAT, (64, 128, 19), 0, 19, SEG_CLASS_MISMATCH, None),
])
def test_gpu_meta_reads_the_kernel_arguments_from_the_layer(
        gpu_parser: ctypes.CDLL, data_type: int, dims: tuple[int, ...], order: int, expected_classes: int,
        status: int, shape: tuple[int, int, int, int] | None) -> None:
    """What fornet_segmentation_meta.cpp passes the kernel for an NvDsInferLayerInfo (data type, dims without the
    batch axis) and the config's segmentation-output-order and num-detected-classes; bad layers are named."""
    sizes = (ctypes.c_uint * 8)(*dims)
    out = (ctypes.c_int * 4)(-7, -7, -7, -7)  # FornetScoreShape: dtype, classes, height, width
    got = gpu_parser.fornet_segmentation_layer_shape(data_type, len(dims), sizes, order, expected_classes, out)
    assert got == status
    assert tuple(out) == (shape if shape is not None else (-7, -7, -7, -7))
    gpu_parser.fornet_segmentation_status_text.restype = ctypes.c_char_p
    text = gpu_parser.fornet_segmentation_status_text(got).decode()
    assert text == "ok" if status == SEG_OK else ("unknown" not in text and len(text) > 20)


#: Runs the probe's parser_settings on a real GLib.KeyFile, in a system Python with gi and numpy (the GStreamer
#: element's environment, as a DeepStream machine's Python has them).
_PARSER_SETTINGS_WITH_GLIB = """
import json, runpy, sys
from gi.repository import GLib
probe = runpy.run_path(sys.argv[1], run_name="fornet_probe")
key_file = GLib.KeyFile()
key_file.load_from_file(sys.argv[2], GLib.KeyFileFlags.NONE)
print(json.dumps(probe["parser_settings"](key_file)))
"""


def parser_settings_with_glib(probe: Path, config: Path) -> list[object]:
    """The probe's ``parser_settings`` of ``config``, read by GLib's own typed getters."""
    command = [str(GST_ENV / "bin" / "python"), "-c", _PARSER_SETTINGS_WITH_GLIB, str(probe), str(config)]
    done = subprocess.run(command, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@NEEDS_GST_ENV
def test_gpu_scores_config_leaves_the_scores_on_the_gpu(raw_logits: Path, tmp_path: Path) -> None:
    """The GPU-parser config runs the scores form's graph and engine with tensor meta and no host copy, with the
    parser settings the library reads; the package ships the library's sources and the command that builds it."""
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    cpu = read_key_file(package / "config_infer_primary_fornet_scores.txt", NVINFER_SCHEMA)["property"]
    gpu = read_key_file(package / GPU_SCORES_CONFIG, NVINFER_SCHEMA)["property"]
    assert (gpu["network-type"], gpu["output-tensor-meta"], gpu["disable-output-host-copy"]) == (100, 1, True)
    same = ("onnx-file", "model-engine-file", "output-blob-names", "segmentation-threshold",
            "segmentation-output-order", "num-detected-classes", "custom-lib-path", "model-color-format")
    assert {key: gpu[key] for key in same} == {key: cpu[key] for key in same}
    for name, source in GPU_PARSER_SOURCES.items():
        assert (package / name).read_bytes() == source.read_bytes()
    readme = (package / "README.md").read_text()
    assert gpu_parser_build_command() in readme and "fornet_probe.py --gpu-parser" in readme
    probe = runpy.run_path(str(package / "fornet_probe.py"), run_name="fornet_probe")
    assert probe["GPU_CONFIG"] == GPU_SCORES_CONFIG and probe["GPU_LIBRARY"] == f"./{GPU_PARSER_LIBRARY}"
    assert parser_settings_with_glib(package / "fornet_probe.py", package / GPU_SCORES_CONFIG) == [
        1, "probabilities", 19, 0.0, 0]
    description = probe["gpu_pipeline_description"]("file:///v.mp4")
    assert f"! nvinfer name=infer config-file-path={GPU_SCORES_CONFIG} ! nvsegvisual name=seg " in description
    assert f"width={INPUT_SIZE[1]} height={INPUT_SIZE[0]}" in description


@pytest.mark.fault
def test_gpu_scores_config_without_tensor_meta_fails_the_check(raw_logits: Path, tmp_path: Path) -> None:
    """Without output-tensor-meta=1 nvinfer attaches no scores for the library to label: the check names it."""
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    config = package / GPU_SCORES_CONFIG
    config.write_text(config.read_text().replace("output-tensor-meta=1", "output-tensor-meta=0"))
    with pytest.raises(ExportError, match=r"network-type=100 needs output-tensor-meta=1 and output class_map "
                                          r"\(labels\) or probabilities"):
        check_deepstream_package(package, raw_logits, frames(1, INPUT_SIZE, seed=2))


@pytest.mark.gpu
def test_gpu_meta_library_builds_with_the_readme_command(raw_logits: Path, tmp_path: Path) -> None:
    """On a DeepStream machine ($FORNET_DEEPSTREAM_ROOT, else DeepStream's install folder): the README's nvcc
    command builds the library in the package folder, and its entry points refuse bad arguments."""
    root = Path(os.environ.get("FORNET_DEEPSTREAM_ROOT", DEEPSTREAM_ROOT))
    if not (root / "sources" / "includes" / "gstnvdsmeta.h").is_file() or find_nvcc() is None:
        pytest.skip(f"needs DeepStream (headers under {root}/sources/includes; $FORNET_DEEPSTREAM_ROOT) and nvcc")
    package = write_deepstream_package(raw_logits, tmp_path / "ds")
    arch = os.environ.get("FORNET_DEEPSTREAM_ARCH", "sm_87")
    done = subprocess.run(["bash", "-c", gpu_parser_build_command(arch, str(root))], cwd=package,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(package / GPU_PARSER_LIBRARY))
    lib.fornet_segmentation_meta_create.restype = ctypes.c_void_p
    lib.fornet_segmentation_meta_create.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_int, ctypes.c_float,
                                                    ctypes.c_int]
    lib.fornet_segmentation_meta_attach.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fornet_segmentation_meta_destroy.argtypes = [ctypes.c_void_p]
    assert not lib.fornet_segmentation_meta_create(1, b"probabilities", 19, 0.0, 2)
    context = lib.fornet_segmentation_meta_create(1, b"probabilities", 19, 0.0, 0)
    assert context
    assert lib.fornet_segmentation_meta_attach(context, None) == -SEG_BAD_ARGUMENT
    lib.fornet_segmentation_meta_destroy(context)


def _load_argmax_harness() -> ModuleType:
    """benchmarks/ is not a package: import the GPU harness by path (registered, as dataclasses need)."""
    name = "segmentation_argmax_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_gpu_parser_harness_cases_agree_here(gpu_parser: ctypes.CDLL) -> None:
    """The GPU harness's awkward cases hold unlabelled pixels, ties and NaN, and the kernel's host reference gives
    the labels the harness will compare the GPU with."""
    harness = _load_argmax_harness()
    scores = harness.make_scores("awkward", 2, (28, 20), seed=1)
    expected = np.stack([parse_segmentation(frame, harness.THRESHOLD) for frame in scores])
    assert (expected == UNLABELLED).any() and np.isnan(scores).any()
    assert np.array_equal(_gpu_parse(gpu_parser, scores, harness.THRESHOLD), expected)
    probabilities = harness.make_scores("probabilities", 1, (28, 20), seed=2)
    assert np.array_equal(_gpu_parse(gpu_parser, probabilities, 0.0)[0], np.argmax(probabilities[0], axis=0))


def test_gpu_parser_harness_needs_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run the harness itself")
    assert _load_argmax_harness().main(["--out", str(tmp_path / "results")]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.fault
def test_raw_input_read_by_other_than_cast_is_refused(tmp_path: Path) -> None:
    """A graph whose uint8 input feeds another op (TensorRT's parser would refuse it) is named, with the fix."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 4, 3])
    labels = helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 4, 4, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["labels"], name="copy")], "g", [image],
                              [labels])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ExportError, match=r"raw input 'image' must be read by Cast nodes only; re-export it with "
                                          r"fornet export --input raw"):
        nvinfer_graph(path, "labels", logits_output=False)
