"""The README's shell examples, run in the order a reader meets them, do not destroy each other's outputs.

Each command is run as written, with placeholders filled in (``DIR``: the generated data, ``RUN``: the run
folder), optional ``[...]`` parts dropped and sizes and counts made small; commands that cannot run on
this machine are skipped with the reason. The README's Triton/DeepStream example once wrote into
``./export`` and replaced the FP16 export with a raw-input one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.readme import README, readme_commands

#: Commands not run here (matched at the start of the command), and why.
SKIPPED = {
    r"make (demo|test|plugin-check|triton-env)": "installs environments or runs the whole suite (CI runs them)",
    r"(python3 -m venv|\.venv/bin/pip|pip install|sudo apt)": "installs packages",
    r"benchmarks/device_check\.sh": "needs a CUDA GPU",
    r"\S+ \.\.\. |.* \.\.\.$": "elided arguments (`...`)",
    r"(\.venv/bin/)?fornet-build-plugin": "needs TensorRT's headers and nvcc able to run",
    r"(\.venv/bin/)?fornet-build --onnx \S+ (?!--print-commands)": "needs TensorRT",
    r"(\.venv/bin/)?fornet-info --engine \S+\.plan": "needs TensorRT (a plan)",
    r"scp ": "copies to a Jetson over ssh",
    r"fornet run (rtsp|csi)://": "needs a camera or an RTSP source",
    r"fornet serve ": "a long-running server (tests/test_triton_serving.py serves models)",
    r"fornet bench .*--triton": "needs the server above",
    r"\.venv/bin/python -m (pytest|tests\.layer_view)": "the test suite itself",
}
#: Smaller values for the flags the examples give (the README's are for real data and devices).
VALUES = {"--input-size": "64x128", "--crop": "64x64", "--batch": "2", "--iters": "2", "--val-every": "2"}
#: Flags added to keep a command affordable, by the start of the command.
EXTRA = {
    "fornet-data synth": ["--train", "2", "--val", "2", "--size", "128x256"],
    "fornet-data video": ["--size", "64x128", "--frames", "5"],
    "fornet-info --variant": ["--input-size", "64x128"],
    "fornet-info --all": ["--input-size", "64x128"],
    "fornet-export --ckpt RUN/best.pth --input-size 512x1024 --int8": ["--calib-images", "2"],
    "fornet-bench": ["--frame-size", "64x128", "--duration-s", "0.2", "--min-iters", "3", "--warmup-s", "0.05"],
    "fornet export --ckpt RUN/best.pth --input raw": ["--input-size", "64x128"],
}


def _skip_reason(text: str) -> str | None:
    return next((reason for pattern, reason in SKIPPED.items() if re.match(pattern, text)), None)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_readme_examples_run_in_order_without_destroying_each_others_outputs(tmp_path: Path) -> None:
    placeholders = {"DIR": str(tmp_path / "data"), "RUN": "run", "RUN/best.pth": "run/best.pth"}
    bin_dir = Path(sys.executable).parent
    ran, skipped = [], []
    export_files: dict[str, bytes] = {}
    for command in readme_commands():
        reason = _skip_reason(command.text)
        if reason is not None:
            skipped.append((command.text, reason))
            continue
        extra = next((flags for start, flags in EXTRA.items() if command.text.startswith(start)), [])
        argv = command.argv(placeholders, VALUES, extra)
        argv[0] = str(bin_dir / argv[0])
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"{command.text}\n{done.stdout}\n{done.stderr}"
        ran.append(command.text)
        if (tmp_path / "export").is_dir():
            now = _files(tmp_path / "export")
            assert not export_files or now.keys() == export_files.keys(), f"{command.text} changed export/"
            export_files = now
    print(f"ran {len(ran)} README commands; skipped {len(skipped)}:",
          *(f"  {text}  ({reason})" for text, reason in skipped), sep="\n")
    assert sorted(export_files) == ["fornet.onnx", "fornet.onnx.json", "fornet_fp16.onnx", "fornet_fp16.onnx.json"]
    assert json.loads(export_files["fornet.onnx.json"])["input"]["dtype"] == "float32"
    assert json.loads((tmp_path / "export-raw" / "fornet.onnx.json").read_text())["input"]["dtype"] == "uint8"
    assert (tmp_path / "export-int8" / "fornet_int8.onnx").is_file() and (tmp_path / "repo").is_dir()
    assert (tmp_path / "overlay.mp4").stat().st_size > 0 and (tmp_path / "report").is_dir()
    assert len(ran) >= 12


def test_readme_names_every_file_an_export_writes() -> None:
    """The INT8 file list once left out ``fornet_int8.ranges.json`` and the INT8 sidecars."""
    from fornet.export.api import EXPORT_FILES

    text = README.read_text(encoding="utf-8")
    assert [name for name in EXPORT_FILES if f"`{name}`" not in text] == []
