"""``fornet export --deepstream``: GLib parses every config with nvinfer's typed semantics, only documented keys,
and nvinfer's input path, graph and segmentation parser give the labels of the project's preprocessing."""

from __future__ import annotations

import runpy
import shlex
from pathlib import Path

import numpy as np
import pytest

from fornet.export.deepstream.check import check_deepstream_package, nvinfer_labels, read_key_file
from fornet.export.deepstream.package import DeepStreamOptions, write_deepstream_package
from fornet.export.deepstream.parser import UNLABELLED, parse_segmentation
from fornet.export.deepstream.schema import DEEPSTREAM_APP_SCHEMA, NVINFER_SCHEMA
from fornet.export.errors import ExportError
from fornet.export.staging import MARKER_NAME, PackageMarker
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import frames


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
        "deepstream_app_config.txt"]
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
    with pytest.raises(ExportError, match="already exists"):
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


def _nvinfer_loop(scores: np.ndarray, threshold: float) -> np.ndarray:
    """nvinfer's fillSegmentationOutput, transcribed loop for loop (C x H x W scores)."""
    classes, height, width = scores.shape
    class_map = np.empty((height, width), dtype=np.int32)
    for y in range(height):
        for x in range(width):
            max_prob, cls = -1.0, -1
            for c in range(classes):
                prob = float(scores[c, y, x])
                if prob > max_prob and prob > threshold:
                    cls, max_prob = c, prob
            class_map[y, x] = cls
    return class_map


@pytest.mark.parametrize("threshold", [0.0, 0.5, -3.0])
def test_parser_emulation_is_nvinfers_loop(threshold: float) -> None:
    rng = np.random.default_rng(4)
    scores = rng.normal(0.0, 1.5, (5, 12, 16)).astype(np.float32)
    scores[:, 0, :4] = 0.25  # ties: the first class wins
    scores[:, 1, :4] = -2.0  # all below nvinfer's starting score -1
    scores[2, 2, :4] = np.nan
    expected = _nvinfer_loop(scores, threshold)
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
