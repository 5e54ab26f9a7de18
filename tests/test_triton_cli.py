"""The command line: fornet export --triton/--deepstream, and fornet serve stopped with SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fornet.cli import export
from fornet.export.staging import MARKER_NAME, PackageMarker
from fornet.export.triton.check import parse_config
from fornet.export.triton.repository import PACKAGE_KIND as TRITON_REPOSITORY
from tests.helpers.runtime_models import LiteExport
from tests.helpers.triton_server import server_options


def test_export_writes_checked_triton_and_deepstream_packages(
        lite: LiteExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = lite.checkpoint
    status = export.main(["--ckpt", str(checkpoint), "--input-size", "64x128", "--no-verify", "--quiet",
                          "--input", "raw", "--channel-order", "BGR", "--dynamic-batch", "--out", str(tmp_path / "x"),
                          "--triton", str(tmp_path / "repo"), "--triton-instance", "cpu",
                          "--deepstream", str(tmp_path / "ds")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "models checked against Triton's schema: fornet, fornet_onnx" in out
    assert "checked with GLib" in out
    assert parse_config(tmp_path / "repo" / "fornet_onnx" / "config.pbtxt").max_batch_size == 8
    assert (tmp_path / "ds" / "config_infer_primary_fornet_scores.txt").is_file()


def test_export_refuses_an_existing_repository_before_exporting(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "repo").mkdir()
    status = export.main(["--ckpt", str(tmp_path / "missing.pth"), "--triton", str(tmp_path / "repo"),
                          "--out", str(tmp_path / "x")])
    assert status == 2
    assert "--triton" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.fault
@pytest.mark.parametrize(("folders", "message"), [
    ({"--out": "x", "--triton": "x"}, "--out {x} is the same folder as --triton {x}"),
    ({"--out": "repo/export", "--triton": "repo"}, "--out {repo/export} overlaps --triton {repo}"),
    ({"--out": "x", "--deepstream": "x/ds"}, "--out {x} overlaps --deepstream {x/ds}"),
    ({"--out": "x", "--triton": "p", "--deepstream": "p/../p"}, "--triton {p} is the same folder as --deepstream"),
])
def test_export_refuses_overlapping_output_folders_before_any_work(
        lite: LiteExport, tmp_path: Path, capsys: pytest.CaptureFixture[str], folders: dict[str, str],
        message: str) -> None:
    """Each output folder is replaced as a whole: ``--out X --triton X --replace-packages`` used to print
    "wrote X/fornet.onnx" and then delete it (or, with an existing repository around the export, exit 0)."""
    existing = tmp_path / "repo"
    existing.mkdir()
    PackageMarker(TRITON_REPOSITORY).save(existing / MARKER_NAME)
    argv = [arg for flag, name in folders.items() for arg in (flag, str(tmp_path / name))]
    status = export.main(["--ckpt", str(lite.checkpoint), "--input-size", "64x128", "--no-verify", "--quiet",
                          "--input", "raw", "--replace-packages", *argv])
    err = capsys.readouterr().err
    assert status == 2
    expected = message.replace("{", str(tmp_path) + "/").replace("}", "")
    assert expected in err and "give them separate folders" in err and "nothing was written" in err
    assert not list(tmp_path.rglob("fornet.onnx")) and sorted(p.name for p in existing.iterdir()) == [MARKER_NAME]


def test_deepstream_needs_raw_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = export.main(["--ckpt", str(tmp_path / "missing.pth"), "--deepstream", str(tmp_path / "ds")])
    assert status == 2 and "--input raw" in capsys.readouterr().err


@pytest.mark.slow
def test_fornet_serve_stops_gracefully_on_sigterm(lite: LiteExport, tmp_path: Path) -> None:
    options = server_options(lite.raw_labels)
    script = shutil.which("fornet-serve", path=str(Path(sys.executable).parent))
    assert script is not None
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([script, *options.argv()], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{options.http_url}/v2/models/fornet/ready", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "serve.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


@pytest.mark.parametrize("argv", [[], ["a.onnx", "--model", "b.onnx"]])
def test_serve_takes_the_model_once(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``fornet serve MODEL`` and ``fornet serve --model MODEL`` are the two spellings; neither or both is an error."""
    from fornet.cli.serve import main

    assert main([*argv, "--device", "cpu"]) == 2
    assert "name the model once: `fornet serve MODEL` or `fornet serve --model MODEL`" in capsys.readouterr().err
