"""Files the user running a command may not read (a ``0600`` checkpoint or model of another user).

eval, export, bench, info and ``run --model`` used to end in a ``PermissionError`` traceback (or call the file
damaged); each now says which file, its owner and mode, and how to fix it. As root the commands run as
``nobody`` (setpriv) on files mode 0600; as another user the files are made mode 0000.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from fornet.readable import check_readable
from tests.helpers.runtime_models import LiteExport


def _as_another_user() -> tuple[list[str], int]:
    """The command prefix that runs a process as a user who may not read the files, and the mode that denies it."""
    if os.geteuid() != 0:
        return [], 0o000
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root needs setpriv (util-linux) to run the command as nobody")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], 0o600


@pytest.fixture(scope="module")
def shared(lite: LiteExport, synth_root: Path) -> Iterator[Path]:
    """A folder every user can enter, with the model files (readable for now), data and an input image."""
    folder = Path(tempfile.mkdtemp(prefix="fornet-unreadable-"))
    try:
        shutil.copy(lite.checkpoint, folder / "lite.pth")
        for source in (lite.onnx, lite.onnx.with_name(lite.onnx.name + ".json")):
            shutil.copy(source, folder / source.name)
        shutil.copytree(synth_root, folder / "data")
        (folder / "frames").mkdir()
        cv2.imwrite(str(folder / "frames" / "a.png"), np.zeros((64, 128, 3), np.uint8))
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o777 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


COMMANDS = {
    "eval": (["eval", "--ckpt", "lite.pth", "--data", "data"], "lite.pth", "checkpoint"),
    "export": (["export", "--model", "lite.pth", "--input-size", "64x128", "--no-verify", "--out", "out"], "lite.pth",
               "checkpoint"),
    "bench": (["bench", "--engine", "fornet.onnx", "--frame-size", "64x128"], "fornet.onnx", "model file"),
    "info": (["info", "--engine", "fornet.onnx"], "fornet.onnx", "ONNX file"),
    "run": (["run", "frames", "labels", "--model", "fornet.onnx"], "fornet.onnx", "model file"),
    "run, sidecar": (["run", "frames", "labels", "--model", "fornet.onnx"], "fornet.onnx.json",
                     "fornet-deploy ONNX sidecar"),
}


@pytest.mark.fault
@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_an_unreadable_file_is_named_with_the_fix(shared: Path, case: str) -> None:
    argv, name, what = COMMANDS[case]
    prefix, mode = _as_another_user()
    (shared / name).chmod(mode)
    try:
        done = subprocess.run([*prefix, str(Path(sys.executable).parent / "fornet"), *argv], cwd=shared,
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        (shared / name).chmod(0o644)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "PermissionError" not in done.stderr
    assert f"error: {what} {name} cannot be read by user " in done.stderr, done.stderr
    assert f"mode {mode:04o}" in done.stderr and f"chmod a+r {name}" in done.stderr


@pytest.mark.fault
def test_the_python_api_raises_the_typed_error(shared: Path) -> None:
    """``Segmenter`` and ``load_model`` raise :class:`UnreadableFileError` (a ``FornetError``)."""
    prefix, mode = _as_another_user()
    script = ("from fornet.errors import FornetError\n"
              "from fornet.model import load_model\n"
              "from fornet.readable import UnreadableFileError\n"
              "from fornet.runtime import Segmenter\n"
              "for open_it, path in ((Segmenter, 'fornet.onnx'), (load_model, 'lite.pth')):\n"
              "    try:\n"
              "        open_it(path)\n"
              "    except UnreadableFileError as exc:\n"
              "        assert isinstance(exc, FornetError)\n"
              "        print(exc)\n")
    for name in ("fornet.onnx", "lite.pth"):
        (shared / name).chmod(mode)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", script], cwd=shared, capture_output=True, text=True,
                              timeout=300, check=False)
    finally:
        for name in ("fornet.onnx", "lite.pth"):
            (shared / name).chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("model file fornet.onnx cannot be read by user ")
    assert done.stdout.splitlines()[1].startswith("checkpoint lite.pth cannot be read by user ")
    assert check_readable(shared / "fornet.onnx", "model file") == shared / "fornet.onnx"
