"""fornet-export CLI: the success path, the failure messages and atomic, verified publishing."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from fornet.cli.export import main
from fornet.export import ExportOptions, export_onnx
from fornet.export.errors import VerificationError
from fornet.export.replacement import ReplacedExportError
from fornet.export.verify import VerificationReport
from fornet.model import build_model, save_checkpoint


@pytest.fixture(scope="module")
def lite_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "lite.pth"
    save_checkpoint(path, build_model("lite").eval(), "lite")
    return path


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--ckpt", "--variant", "--input-size", "--batch", "--opset", "--out", "--gate", "--fp16",
                 "--io", "--input", "--channel-order", "--output", "--dynamic-batch", "--no-verify",
                 "--verify-data"):
        assert flag in text


def test_export_writes_files_and_reports(lite_ckpt, tmp_path, synth_root, capsys):
    out = tmp_path / "nested" / "out"
    code = main(["--ckpt", str(lite_ckpt), "--input-size", "64x128", "--out", str(out), "--quiet",
                 "--verify-data", str(synth_root), "--verify-images", "1", "--opset", "16", "--fp16", "--io", "fp16",
                 "--gate", "plugin"])
    assert code == 0
    text = capsys.readouterr().out
    assert text.count("PASS") == 2 and f"wrote {out / 'fornet.onnx'}" in text
    assert "k per ratio: [3, 6, 10, 13]" in text  # 4 x 8 = 32 cells: round(3.2, 6.4, 9.6, 12.8)
    sidecar = json.loads((out / "fornet.onnx.json").read_text())
    assert sidecar["onnx"]["opset"] == 16 and sidecar["verification"]["images"] == 1
    for name in ("fornet.onnx", "fornet_fp16.onnx"):
        opsets = {(o.domain or "", o.version) for o in onnx.load(out / name).opset_import}
        assert opsets == {("", 16), ("fornet", 1)}
    half = json.loads((out / "fornet_fp16.onnx.json").read_text())
    assert half["input"]["dtype"] == "float16" and [o["dtype"] for o in half["outputs"]] == ["float16"] * 2
    session = ort.InferenceSession(str(out / "fornet_fp16.onnx"), providers=["CPUExecutionProvider"])
    assert [a.type for a in (*session.get_inputs(), *session.get_outputs())] == ["tensor(float16)"] * 3


@pytest.mark.parametrize(("args", "message"), [
    (["--input-size", "100x200"], "not divisible by this variant's output stride 16; use e.g. --input-size 96x192"),
    (["--variant", "r18"], "was saved for variant 'lite', not 'r18'"),
    (["--io", "fp16"], "--io fp16 applies to the FP16 file only; add --fp16"),
    (["--opset", "12"], "opset 12 is not supported; choose 15..20"),
    (["--gate", "native", "--input-size", "1280x2048"], "--gate native needs every k <= 3840"),
    (["--channel-order", "BGR"], "--channel-order applies to --input raw only"),
])
def test_user_errors_exit_2_with_a_fix(lite_ckpt, tmp_path, capsys, args, message):
    code = main(["--ckpt", str(lite_ckpt), "--out", str(tmp_path), "--no-verify", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "fornet.onnx").exists()


def test_unknown_variant_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--model", "model.pth", "--variant", "r7"])
    assert info.value.code == 2 and "argument --variant: invalid choice: 'r7'" in capsys.readouterr().err


def test_bare_state_dict_of_another_variant(tmp_path, capsys):
    bare = tmp_path / "bare.pth"
    torch.save(build_model("lite").state_dict(), bare)
    assert main(["--ckpt", str(bare), "--variant", "r18", "--out", str(tmp_path), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "does not match the FoR-Net variant" in err and "--variant" in err


def test_missing_and_corrupt_checkpoints(tmp_path, capsys):
    assert main(["--ckpt", str(tmp_path / "nope.pth"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.pth"
    torch.save(build_model("lite").state_dict(), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    assert main(["--ckpt", str(corrupt), "--out", str(tmp_path)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_unwritable_output_directory(lite_ckpt, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["--ckpt", str(lite_ckpt), "--out", str(blocker / "sub"), "--no-verify"]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--input-size", "64by128"], ["--fp32-threshold", "120"], ["--gate", "x"]])
def test_malformed_flags_are_argparse_errors(lite_ckpt, args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--ckpt", str(lite_ckpt), *args])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_failed_verification_publishes_nothing(lite_ckpt, tmp_path, monkeypatch):
    def failing(model, path, images, **kwargs):
        return VerificationReport(precision=kwargs["precision"], images=len(images), max_abs_logit_diff=3.0,
                                  argmax_agreement=0.5, threshold=kwargs["threshold"], mask_agreement=1.0,
                                  selected_cells=[list(kwargs["ks"])], expected_cells=list(kwargs["ks"]),
                                  passed=False)

    monkeypatch.setattr("fornet.export.api.verify_onnx", failing)
    with pytest.raises(VerificationError, match=r"fornet.onnx failed verification: .*50\.0000% .*nothing was pub"):
        export_onnx(lite_ckpt, tmp_path, ExportOptions(input_size=(64, 128), verify_images=1, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no ONNX, sidecar or temporary file may remain"


def test_auto_gate_and_engine_command_without_tensorrt(lite_ckpt, tmp_path, capsys) -> None:
    """Without TensorRT the export still succeeds, says which gate it chose and prints the build steps."""
    from fornet.runtime.tensorrt.env import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed: the plan is built instead of printed")
    out = tmp_path / "auto"
    assert main(["--ckpt", str(lite_ckpt), "--input-size", "64x128", "--out", str(out), "--no-verify",
                 "--quiet", "--fp16"]) == 0
    text = capsys.readouterr().out
    assert "Top-K gate: native (chosen by --gate auto)" in text
    assert f"fornet-build --onnx {out / 'fornet_fp16.onnx'}" in text
    assert "fornet-build-plugin" not in text  # a native gate needs no plugin
    graph = onnx.load(out / "fornet_fp16.onnx")
    assert not [n for n in graph.graph.node if n.op_type == "TopKGate"]
    assert main(["--ckpt", str(lite_ckpt), "--input-size", "64x128", "--out", str(tmp_path / "req"),
                 "--no-verify", "--quiet", "--gate", "plugin", "--require-engine"]) == 2
    captured = capsys.readouterr()
    assert "fornet-build-plugin" not in captured.out and "--require-engine" in captured.err
    assert (tmp_path / "req" / "fornet.onnx").is_file(), "the ONNX files are kept"


def test_tiny_input_size_is_verified_on_resized_scenes(lite_ckpt, tmp_path, capsys):
    """16x16 (one selector cell for lite) exports and verifies; no error about drawing street scenes."""
    assert main(["--ckpt", str(lite_ckpt), "--input-size", "16x16", "--out", str(tmp_path), "--quiet",
                 "--verify-images", "1"]) == 0
    assert "street scene" not in capsys.readouterr().err
    assert (tmp_path / "fornet.onnx").is_file()


@pytest.mark.fault
def test_an_export_of_another_kind_is_kept_unless_overwrite(lite_ckpt, tmp_path, capsys):
    """The README's Triton example once replaced a float-input export (and deleted its FP16 files) with a raw
    uint8 BGR one, without a word: it is refused, naming the changes, and kept; --overwrite replaces it."""
    base = ["--ckpt", str(lite_ckpt), "--input-size", "64x128", "--out", str(tmp_path), "--no-verify", "--quiet"]
    assert main([*base, "--fp16"]) == 0
    assert main([*base, "--fp16"]) == 0, "an export of the same kind is updated in place"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    raw = [*base, "--input", "raw", "--channel-order", "BGR", "--output", "labels"]
    assert main(raw) == 2
    err = capsys.readouterr().err
    assert (f"error: {tmp_path} holds an export of another kind" in err
            and "fornet.onnx changes from float32 NCHW RGB input -> logits (float32) to uint8 NHWC BGR input -> "
                "labels (uint8)" in err
            and "fornet_fp16.onnx, fornet_fp16.onnx.json are removed" in err and "add --overwrite" in err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert main(base) == 2 and "fornet_fp16.onnx, fornet_fp16.onnx.json are removed" in capsys.readouterr().err
    assert main([*raw, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fornet.onnx", "fornet.onnx.json"]
    assert json.loads((tmp_path / "fornet.onnx.json").read_text())["input"]["dtype"] == "uint8"


def test_the_api_refuses_an_export_of_another_kind(lite_ckpt, tmp_path):
    options = ExportOptions(input_size=(64, 128), verify=False, progress=False, fp16=True)
    export_onnx(lite_ckpt, tmp_path, options)
    with pytest.raises(ReplacedExportError, match=r"fornet_fp16\.onnx, fornet_fp16\.onnx\.json are removed"):
        export_onnx(lite_ckpt, tmp_path, ExportOptions(input_size=(64, 128), verify=False, progress=False))
    assert (tmp_path / "fornet_fp16.onnx").is_file()
    export_onnx(lite_ckpt, tmp_path, ExportOptions(input_size=(64, 128), verify=False, progress=False, overwrite=True))
    assert not (tmp_path / "fornet_fp16.onnx").exists()


@pytest.mark.parametrize(("env", "quiet", "shown"), [("1", [], True), ("1", ["--quiet"], False), (None, [], False)])
def test_export_progress_on_a_terminal_only(lite_ckpt, tmp_path, capsys, monkeypatch, env, quiet, shown):
    """Each step of an export is named on stderr where progress is wanted (it was silent for ~24 s); none with
    --quiet or in a log."""
    if env is None:
        monkeypatch.delenv("FORNET_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("FORNET_PROGRESS", env)
    assert main(["--ckpt", str(lite_ckpt), "--input-size", "64x128", "--out", str(tmp_path), "--fp16",
                 "--verify-images", "1", *quiet]) == 0
    err = capsys.readouterr().err
    steps = [f"fornet export: loading {lite_ckpt} ...", "fornet export: tracing the graph",
             "fornet export: writing fornet.onnx and verifying it", "verifying fp32",
             "fornet export: converting to FP16",
             f"fornet export: publishing into {tmp_path} ..."]
    assert all(step in err for step in steps) if shown else err == ""
