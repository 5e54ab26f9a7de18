"""Fault injection into exports: kills at every stage, failed verifications and bad folders over a good export.

The promise (docs/reliability.md): a failure or a kill at any moment leaves the previous export
whole; a kill after the commit point is completed by the next export into the folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fornet.atomic import remove_stale_temporaries
from fornet.cli.export import main
from fornet.export.api import EXPORT_FILES, ExportOptions, export_onnx
from fornet.export.errors import ExportError
from fornet.export.transaction import JOURNAL_NAME, STAGING_PREFIX, JournalError, PublishJournal, recover
from fornet.export.verify import VerificationReport
from tests.helpers.faults import check_export, killed, run_fornet, snapshot, visible
from tests.helpers.int8 import lite_checkpoint

pytestmark = pytest.mark.fault
SIZE = ["--input-size", "64x128", "--gate", "plugin", "--quiet"]
FP16 = ["fornet.onnx", "fornet_fp16.onnx"]

#: Points reached before the journal is written: the previous export must stay byte for byte.
BEFORE_COMMIT = ["atomic.fornet.onnx", "atomic.fornet.onnx.json", "export.staged_fp32", "atomic.fornet_fp16.onnx",
                 "export.staged_fp16", "export.before_commit"]
#: Points after it: the next export (here: recover) completes the new export.
AFTER_COMMIT = ["export.committed", "export.publish.fornet.onnx", "export.publish.fornet.onnx.json",
                "export.publish.fornet_fp16.onnx", "export.publish.fornet_fp16.onnx.json",
                "export.remove.fornet_int8.onnx", "export.before_journal_removed"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different lite checkpoints: the old export's and the new one's."""
    root = tmp_path_factory.mktemp("fault-models")
    (root / "a").mkdir()
    (root / "b").mkdir()
    return lite_checkpoint(root / "a", seed=1), lite_checkpoint(root / "b", seed=2)


@pytest.fixture(scope="module")
def old_export(models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good FP32 + FP16 export of the first checkpoint."""
    out = tmp_path_factory.mktemp("old-export")
    export_onnx(models[0], out, ExportOptions(input_size=(64, 128), fp16=True, gate="plugin", verify_images=1,
                                              progress=False))
    return out


def _copy(old_export: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(old_export, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", BEFORE_COMMIT + AFTER_COMMIT)
def test_kill_during_export(point: str, models: tuple[Path, Path], old_export: Path, tmp_path: Path) -> None:
    out = _copy(old_export, tmp_path)
    before = snapshot(out)
    result = run_fornet("export", "--ckpt", str(models[1]), "--out", str(out), "--fp16", "--verify-images", "1",
                        *SIZE, fault=point)
    assert killed(result), f"{point} was not reached: {result.stderr[-2000:]}"
    if point in BEFORE_COMMIT:
        assert visible(out) == before, "the previous export changed before the commit point"
    recover(out, EXPORT_FILES)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [], "leftovers after recovery"
    expected = models[0] if point in BEFORE_COMMIT else models[1]
    assert check_export(out, expected) == FP16
    if point in BEFORE_COMMIT:
        assert snapshot(out) == before


@pytest.mark.slow
def test_next_export_removes_leftovers_of_a_killed_one(models: tuple[Path, Path], old_export: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _copy(old_export, tmp_path)
    # --overwrite: the new export has no FP16 file, so it replaces an export of another kind
    assert killed(run_fornet("export", "--ckpt", str(models[1]), "--out", str(out), "--no-verify", "--overwrite",
                             *SIZE, fault="atomic.fornet.onnx"))
    assert list(out.glob(f"{STAGING_PREFIX}*")), "the killed export left its staging folder"
    assert main(["--ckpt", str(models[1]), "--out", str(out), "--no-verify", "--overwrite", *SIZE]) == 0
    assert "removed .fornet-staging-" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["fornet.onnx", "fornet.onnx.json"], \
        "the old FP16 files of another model must not stay next to the new export"
    check_export(out, models[1])


def _failing_fp16(model: object, path: Path, images: list, **kwargs: object) -> VerificationReport:
    agreement = 0.5 if kwargs["precision"] == "fp16" else 1.0
    return VerificationReport(precision=str(kwargs["precision"]), images=len(images), max_abs_logit_diff=0.0,
                              argmax_agreement=agreement, threshold=float(kwargs["threshold"]),  # type: ignore[arg-type]
                              mask_agreement=1.0, selected_cells=[list(kwargs["ks"])],  # type: ignore[call-overload]
                              expected_cells=list(kwargs["ks"]), passed=agreement == 1.0)  # type: ignore[call-overload]


def test_failed_fp16_check_keeps_the_previous_export(models: tuple[Path, Path], old_export: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = _copy(old_export, tmp_path)
    before = snapshot(out)
    monkeypatch.setattr("fornet.export.api.verify_onnx", _failing_fp16)
    assert main(["--ckpt", str(models[1]), "--out", str(out), "--fp16", "--verify-images", "1", *SIZE]) == 2
    assert "nothing was published" in capsys.readouterr().err
    assert snapshot(out) == before


def test_directory_where_a_file_goes_publishes_nothing(models: tuple[Path, Path], old_export: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _copy(old_export, tmp_path)
    (out / "fornet_fp16.onnx.json").unlink()
    (out / "fornet_fp16.onnx.json").mkdir()
    before = snapshot(out)
    assert main(["--ckpt", str(models[1]), "--out", str(out), "--fp16", "--no-verify", *SIZE]) == 2
    assert "is a directory where the export writes a file" in capsys.readouterr().err
    assert snapshot(out) == before and not list(out.glob(".fornet*"))


def test_export_refuses_a_folder_another_export_is_writing(tmp_path: Path) -> None:
    (tmp_path / f"{STAGING_PREFIX}1").mkdir()  # process 1 always runs
    with pytest.raises(ExportError, match=r"another export \(process 1\) is writing"):
        recover(tmp_path, EXPORT_FILES)


def test_damaged_journal_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_NAME).write_bytes(b"\x00\x01garbage")
    with pytest.raises(JournalError, match=r"delete it and the \.fornet-staging"):
        recover(tmp_path, EXPORT_FILES)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file and link under ``root`` (links by target, never followed), by relative path."""
    return {str(p.relative_to(root)): (os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_symlink() or p.is_file()}


def _foreign_journal(case: str, out: Path) -> PublishJournal:
    """A journal planted in ``out`` that names something outside the export's own files (``case``)."""
    outside = out.parent
    (outside / "victim").write_bytes(b"victim")
    (outside / "victim-dir").mkdir()
    (outside / "victim-dir" / "fornet.onnx").write_bytes(b"victim's file")
    staging = f"{STAGING_PREFIX}999999999"
    if case == "remove ../victim":
        return PublishJournal(staging, (), ("../victim",))
    if case == "remove absolute":
        return PublishJournal(staging, (), (str(outside / "victim"),))
    if case == "publish ../victim":  # would move out/victim over the file beside the folder
        (out / "victim").write_bytes(b"planted")
        (out / staging).mkdir()
        return PublishJournal(staging, ("../victim",), ())
    if case == "staging absolute":
        return PublishJournal(str(outside / "victim-dir"), (), ())
    if case == "staging ../":
        return PublishJournal("../victim-dir", (), ())
    assert case == "staging link"  # would move the victim's fornet.onnx into the export
    (out / staging).symlink_to(outside / "victim-dir")
    return PublishJournal(staging, ("fornet.onnx",), ())


@pytest.mark.parametrize("case", ["remove ../victim", "remove absolute", "publish ../victim", "staging absolute",
                                  "staging ../", "staging link"])
def test_journal_naming_other_files_is_refused_and_touches_nothing(case: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "fornet.onnx").write_bytes(b"published")
    _foreign_journal(case, out).save(out / JOURNAL_NAME)
    before = _tree(tmp_path)
    with pytest.raises(JournalError, match=rf"{JOURNAL_NAME} names .*nothing was changed: delete"):
        recover(out, EXPORT_FILES)
    assert _tree(tmp_path) == before


def test_export_over_a_journal_naming_outside_files_fails_and_deletes_nothing(
        models: tuple[Path, Path], old_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _copy(old_export, tmp_path)
    victim, victims = tmp_path / "victim", tmp_path / "victims"
    victim.write_bytes(b"keep me")
    victims.mkdir()
    (victims / "file").write_bytes(b"keep me too")
    PublishJournal(str(victims), (), ("../victim", str(victim))).save(out / JOURNAL_NAME)
    before = _tree(tmp_path)
    assert main(["--ckpt", str(models[1]), "--out", str(out), "--no-verify", *SIZE]) == 2
    err = capsys.readouterr().err
    assert str(out / JOURNAL_NAME) in err and "'../victim'" in err and f"delete {out / JOURNAL_NAME}" in err
    assert _tree(tmp_path) == before


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".fornet.onnx.999999999.abc.tmp"
    stale.write_bytes(b"x" * 100)
    assert recover(tmp_path, EXPORT_FILES) and not stale.exists()


def test_stale_temporaries_are_matched_by_their_file_name_literally(tmp_path: Path) -> None:
    own, other = tmp_path / ".[a].999999999.x.tmp", tmp_path / ".a.999999999.x.tmp"
    own.write_bytes(b"x")
    other.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path / "[a]") == [own] and other.exists()


@pytest.mark.slow
def test_failed_int8_calibration_keeps_the_previous_export(models: tuple[Path, Path], synth_root: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    int8 = ["--int8", "--calib-method", "minmax", "--no-accuracy-gate", "--no-verify", *SIZE]
    out = tmp_path / "export"
    assert main(["--ckpt", str(models[0]), "--out", str(out), "--calib-data", str(synth_root), *int8]) == 0
    before = snapshot(out)
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    sorted((data / "leftImg8bit" / "train").rglob("*.png"))[-1].write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["--ckpt", str(models[1]), "--out", str(out), "--calib-data", str(data), "--recalibrate",
                 *int8]) == 2
    assert "leftImg8bit.png" in capsys.readouterr().err
    assert snapshot(out) == before and not list(out.glob(".fornet*"))
    check_export(out, models[0])


def test_full_disk_during_the_fp16_file_keeps_the_previous_export(models: tuple[Path, Path], old_export: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import onnx

    out = _copy(old_export, tmp_path)
    before = snapshot(out)
    save = onnx.save
    calls: list[Path] = []

    def save_until_full(model: onnx.ModelProto, path: Path) -> None:
        calls.append(Path(path))
        save(model, path)
        if len(calls) == 2:  # the FP16 file: written in part, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fornet.export.api.onnx.save", save_until_full)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(models[1], out, ExportOptions(input_size=(64, 128), fp16=True, gate="plugin", verify=False,
                                                  progress=False))
    assert snapshot(out) == before and not list(out.glob(".fornet*"))
