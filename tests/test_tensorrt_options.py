"""BuildOptions and the fornet-build / trtexec command lines (pure, no TensorRT)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fornet.cli.build import COMMAND
from fornet.export.tensorrt.build import engine_build_command, trtexec_build_command
from fornet.export.tensorrt.options import BuildOptions, BuildOptionsError, default_plan_path
from fornet.options import options_from_args
from fornet.runtime.tensorrt.plan_metadata import metadata_path
from tests.helpers.onnx_graphs import save_model

FULL = {
    "plugin": Path("/opt/fornet/lib/libfornet_plugins.so"),
    "workspace_mib": 2048,
    "opt_level": 4,
    "timing_cache": Path("cache dir/orin.cache"),
    "min_batch": 1,
    "opt_batch": 2,
    "max_batch": 4,
    "version_compatible": True,
    "hardware_compat": "ampere+",
    "verbose": True,
}


def test_defaults_and_paths() -> None:
    options = BuildOptions()
    assert options.batch_range() == (1, 1, 4) and not options.batch_given
    assert BuildOptions(min_batch=8).batch_range() == (8, 8, 8)
    assert BuildOptions(opt_batch=6).batch_range() == (1, 6, 6)
    assert default_plan_path("export/fornet_fp16.onnx") == Path("export/fornet_fp16.plan")
    assert metadata_path("export/fornet.plan") == Path("export/fornet.plan.json")


@pytest.mark.parametrize(("options", "message"), [
    ({"workspace_mib": 0}, "at least 1 MiB"),
    ({"opt_level": 6}, "0..5"),
    ({"hardware_compat": "turing+"}, "none, ampere\\+"),
    ({"min_batch": 4, "max_batch": 2}, "min <= opt <= max"),
    ({"min_batch": 0}, "1 <= min"),
])
def test_invalid_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(BuildOptionsError, match=message):
        BuildOptions(**options)


def test_engine_build_command_round_trips_through_the_cli_parser() -> None:
    command = engine_build_command("export/fornet.onnx", "out/fornet.plan", BuildOptions(**FULL))
    argv = shlex.split(command)
    assert argv[0] == "fornet-build"
    args = COMMAND.parser().parse_args(argv[1:])
    assert args.model == Path("export/fornet.onnx") and args.out == Path("out/fornet.plan")
    assert options_from_args(BuildOptions, args) == BuildOptions(**FULL)


def test_engine_build_command_leaves_defaults_out() -> None:
    assert engine_build_command("a b.onnx") == "fornet-build --onnx 'a b.onnx'"


def test_trtexec_command_strongly_typed_with_profile(tmp_path: Path) -> None:
    onnx_path = save_model(tmp_path / "fornet.onnx", gate=True)
    command = trtexec_build_command(onnx_path, tmp_path / "fornet.plan", BuildOptions(**FULL))
    argv = shlex.split(command)
    assert argv[0] == "trtexec" and "--stronglyTyped" in argv
    assert not {"--fp16", "--int8", "--best"} & set(argv)
    assert f"--staticPlugins={FULL['plugin']}" in argv
    assert "--memPoolSize=workspace:2048M" in argv and "--builderOptimizationLevel=4" in argv
    assert "--minShapes=image:1x3x8x16,score:1x1x8x16" in argv
    assert "--optShapes=image:2x3x8x16,score:2x1x8x16" in argv
    assert "--maxShapes=image:4x3x8x16,score:4x1x8x16" in argv
    assert {"--versionCompatible", "--hardwareCompatibilityLevel=ampere+", "--skipInference"} <= set(argv)
    assert "--timingCacheFile=cache dir/orin.cache" in argv


def test_trtexec_command_static_batch_no_plugin(tmp_path: Path) -> None:
    argv = shlex.split(trtexec_build_command(save_model(tmp_path / "m.onnx", batch=1)))
    assert f"--saveEngine={tmp_path / 'm.plan'}" in argv
    assert not any(a.startswith(("--minShapes", "--staticPlugins")) for a in argv)


def test_trtexec_legacy_int8_uses_calib_not_strong_typing(tmp_path: Path) -> None:
    argv = shlex.split(trtexec_build_command(save_model(tmp_path / "m.onnx"),
                                               options=BuildOptions(legacy_int8_cache=Path("calib.cache"))))
    assert "--int8" in argv and "--calib=calib.cache" in argv and "--stronglyTyped" not in argv


def test_trtexec_rejects_dynamic_spatial_dims(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    shape = ["N", 3, "H", 16]
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["out"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(BuildOptionsError, match=r"fornet-export --input-size"):
        trtexec_build_command(path)
