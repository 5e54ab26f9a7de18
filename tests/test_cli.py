"""The ``fornet`` command, its ``fornet-<name>`` aliases, and flags declared by options dataclasses."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from fornet.cli.main import COMMAND_MODULES, build_parser, commands
from fornet.export.int8.options import Int8Options
from fornet.export.options import ExportOptions, IOFormat
from fornet.export.tensorrt.options import BuildOptions
from fornet.model.train_config import TrainConfig
from fornet.options import declared_flags, options_from_args, to_argv
from fornet.runtime.bench.runner import BenchOptions
from fornet.runtime.bench.timing import TimingSettings

NAMES = [command.name for command in commands()]


def _subcommand_parser(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _without_prog(text: str, prog: str) -> str:
    """The help text with the usage line's program name replaced (``fornet export`` / ``fornet-export``)."""
    assert text.startswith(f"usage: {prog}")
    return "usage: PROG" + text[len(f"usage: {prog}"):]


def test_every_module_holds_its_command_and_alias() -> None:
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"fornet.cli.{module_name}")
        assert module.COMMAND.name == module_name.replace("_", "-")
        assert module.COMMAND.alias == f"fornet-{module.COMMAND.name}"
        assert module.main == module.COMMAND.alias_main


def test_fornet_help_lists_every_subcommand() -> None:
    text = build_parser().format_help()
    for name in ("data", "train", "eval", "info", "export", "build", "build-plugin", "bench"):
        assert f"    {name} " in text or f"    {name}\n" in text


@pytest.mark.parametrize("name", NAMES)
def test_subcommand_help_equals_alias_help(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    command = next(c for c in commands() if c.name == name)
    sub = _subcommand_parser(name).format_help()
    alias = command.parser().format_help()
    assert _without_prog(sub, f"fornet {name}") == _without_prog(alias, command.alias)


@pytest.mark.parametrize("name", NAMES)
def test_alias_help_exits_zero(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    command = next(c for c in commands() if c.name == name)
    with pytest.raises(SystemExit) as info:
        command.alias_main(["--help"])
    assert info.value.code == 0
    assert f"usage: {command.alias}" in capsys.readouterr().out


def test_installed_scripts_say_the_same() -> None:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "fornet-export").is_file():
        pytest.skip("the console scripts are not installed beside this interpreter")
    env = {**os.environ, "COLUMNS": "100"}

    def help_of(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout

    alias = help_of(str(bin_dir / "fornet-export"), "--help")
    assert _without_prog(help_of(str(bin_dir / "fornet"), "export", "--help"), "fornet export") == \
        _without_prog(alias, "fornet-export")
    module = help_of(sys.executable, "-m", "fornet", "export", "--help")
    assert _without_prog(module, "fornet export") == _without_prog(alias, "fornet-export")


@pytest.mark.parametrize(("name", "classes"), [
    ("export", (ExportOptions, IOFormat, Int8Options)),
    ("build", (BuildOptions,)),
    ("bench", (BenchOptions, TimingSettings)),
    ("train", (TrainConfig,)),
])
def test_every_declared_flag_is_on_its_command(name: str, classes: tuple[type, ...]) -> None:
    command = next(c for c in commands() if c.name == name)
    flags = [flag for action in command.parser()._actions for flag in action.option_strings]
    assert len(flags) == len(set(flags)), "a flag is declared twice"
    for cls in classes:
        for _, spec in declared_flags(cls):
            assert spec.flag in flags


def test_build_options_round_trip_through_the_generated_parser() -> None:
    options = BuildOptions(plugin=Path("lib.so"), workspace_mib=256, opt_level=2, timing_cache=Path("t.cache"),
                           min_batch=2, opt_batch=3, max_batch=5, version_compatible=True, hardware_compat="ampere+",
                           legacy_int8_cache=Path("c.cache"), verbose=True)
    assert all(getattr(options, f.name) != f.default for f in fields(BuildOptions)), "every field is set"
    command = next(c for c in commands() if c.name == "build")
    args = command.parser().parse_args(["--onnx", "m.onnx", *to_argv(options)])
    assert options_from_args(BuildOptions, args) == options


def test_export_flags_reach_every_field() -> None:
    command = next(c for c in commands() if c.name == "export")
    args = command.parser().parse_args([
        "--ckpt", "m.pth", "--input-size", "64x128", "--batch", "2", "--dynamic-batch", "--opset", "18",
        "--gate", "native", "--fp16", "--io", "fp16", "--no-verify", "--verify-data", "d", "--verify-split", "train",
        "--verify-images", "3", "--fp32-threshold", "99", "--fp16-threshold", "98", "--quiet",
        "--input", "raw", "--channel-order", "BGR", "--output", "labels", "--label-dtype", "int32",
    ])
    io = options_from_args(IOFormat, args)
    options = options_from_args(ExportOptions, args, io=io)
    assert io == IOFormat(input="raw", channel_order="BGR", output="labels", label_dtype="int32")
    assert options == ExportOptions(
        input_size=(64, 128), batch=2, dynamic_batch=True, opset=18, gate="native", fp16=True, io_fp16=True, io=io,
        verify=False, verify_data=Path("d"), verify_split="train", verify_images=3, fp32_threshold=0.99,
        fp16_threshold=0.98, progress=False)
    defaults = options_from_args(ExportOptions, command.parser().parse_args(["--ckpt", "m.pth"]))
    assert defaults == ExportOptions(), "the API's defaults are the CLI's (gate auto included)"
