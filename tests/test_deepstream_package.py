"""``fornet export --deepstream``: GLib parses every config with nvinfer's typed semantics, only documented keys,
and the nvinfer input path gives the labels of the project's preprocessing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fornet.export.deepstream.check import check_deepstream_package, read_key_file
from fornet.export.deepstream.package import DeepStreamOptions, write_deepstream_package
from fornet.export.deepstream.schema import DEEPSTREAM_APP_SCHEMA, NVINFER_SCHEMA
from fornet.export.errors import ExportError
from fornet.export.staging import MARKER_NAME, PackageMarker
from tests.helpers.runtime_models import INPUT_SIZE, LiteExport
from tests.helpers.triton_server import frames


@pytest.fixture(scope="module")
def raw_logits(tmp_path_factory: pytest.TempPathFactory, lite: LiteExport) -> Path:
    """The lite checkpoint exported with raw BGR input and logits output."""
    from fornet.export import ExportOptions, IOFormat, export_onnx

    checkpoint = lite.checkpoint
    return export_onnx(checkpoint, tmp_path_factory.mktemp("raw-logits"), ExportOptions(
        input_size=INPUT_SIZE, gate="plugin", verify=False, progress=False,
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
