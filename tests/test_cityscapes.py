"""CityscapesDataset, scan_split and `fornet-data check` on hand-made and generated folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fornet.calibration.cityscapes import (
    CityscapesDataset,
    DatasetError,
    Sample,
    find_split_images,
    scan_split,
)
from fornet.cli.data import main


def _write_pair(root: Path, split: str, city: str, stem_no: int, rgb: np.ndarray,
                label_ids: np.ndarray | None) -> str:
    stem = f"{city}_{stem_no:06d}_000019"
    img_dir = root / "leftImg8bit" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), rgb[:, :, ::-1])
    if label_ids is not None:
        gt_dir = root / "gtFine" / split / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), label_ids)
    return stem


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """Two val images (cities out of order) with known pixels; one train image."""
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = (250, 10, 20)  # R, G, B
    ids = np.full((4, 6), 7, np.uint8)  # road
    ids[1, :] = 26  # car -> trainId 13
    ids[2, :3] = 1  # ego vehicle -> ignore
    ids[3, 5] = 33  # bicycle -> 18
    _write_pair(tmp_path, "val", "zurich", 1, rgb, ids)
    _write_pair(tmp_path, "val", "aachen", 3, rgb, ids)
    _write_pair(tmp_path, "train", "bonn", 0, rgb, ids)
    return tmp_path


def test_dataset_reads_rgb_and_train_ids(tiny_root: Path) -> None:
    ds = CityscapesDataset(tiny_root, "val")
    assert len(ds) == 2
    assert ds.names == ["aachen_000003_000019", "zurich_000001_000019"]
    assert ds.root == tiny_root and ds.split == "val"
    assert [p.name for p in ds.image_paths] == [f"{n}_leftImg8bit.png" for n in ds.names]
    assert all(p is not None and p.name.endswith("_gtFine_labelIds.png") for p in ds.label_paths)
    sample = ds[0]
    assert isinstance(sample, Sample) and sample.name == "aachen_000003_000019"
    assert sample.image.dtype == np.uint8 and sample.image.shape == (4, 6, 3)
    assert sample.image[0, 0].tolist() == [250, 10, 20]  # RGB order, not OpenCV's BGR
    assert sample.label.dtype == np.uint8 and sample.label.shape == (4, 6)
    assert sample.label[0].tolist() == [0] * 6
    assert sample.label[1].tolist() == [13] * 6
    assert sample.label[2].tolist() == [255, 255, 255, 0, 0, 0]
    assert sample.label[3, 5] == 18
    assert ds[-1].name == "zurich_000001_000019"
    with pytest.raises(IndexError):
        ds[2]


def test_transform_is_applied(tiny_root: Path) -> None:
    calls = []

    def flip(image: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        calls.append((image.shape, None if label is None else label.shape))
        return image[:, ::-1], None if label is None else label[:, ::-1]

    sample = CityscapesDataset(tiny_root, "val", transform=flip)[0]
    assert calls == [((4, 6, 3), (4, 6))]
    assert sample.image[0, 5].tolist() == [250, 10, 20]
    assert sample.label[3, 0] == 18


def test_missing_root_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist.*leftImg8bit"):
        CityscapesDataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"no leftImg8bit/ folder.*fornet-data synth"):
        CityscapesDataset(tmp_path)


def test_missing_split_lists_the_existing_ones(tiny_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"split 'test'.*splits with images: train, val"):
        CityscapesDataset(tiny_root, "test")
    (tiny_root / "leftImg8bit" / "empty").mkdir()
    with pytest.raises(DatasetError, match="split 'empty'"):
        find_split_images(tiny_root, "empty")


def test_image_without_label(tiny_root: Path) -> None:
    stem = _write_pair(tiny_root, "val", "bern", 2, np.zeros((4, 6, 3), np.uint8), None)
    with pytest.raises(DatasetError, match=f"{stem}_gtFine_labelIds.png is missing.*gtFine/val/ labels") as info:
        CityscapesDataset(tiny_root, "val")
    assert "require_labels" not in str(info.value), "CLI users are not told about a Python argument"
    ds = CityscapesDataset(tiny_root, "val", require_labels=False)
    assert len(ds) == 3 and ds.names[1] == stem  # aachen < bern < zurich
    assert ds.label_paths[1] is None
    sample = ds[1]
    assert sample.label is None and sample.image.shape == (4, 6, 3)
    assert ds[0].label is not None


def test_corrupt_and_wrong_files(tiny_root: Path) -> None:
    ds = CityscapesDataset(tiny_root, "val")
    ds.image_paths[0].write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DatasetError, match=r"cannot read image.*aachen_000003_000019_leftImg8bit.png"):
        ds[0]
    assert cv2.imwrite(str(ds.label_paths[1]), np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(DatasetError, match="single-channel 8-bit labelIds"):
        ds[1]
    assert cv2.imwrite(str(ds.label_paths[1]), np.zeros((5, 6), np.uint8))
    with pytest.raises(DatasetError, match="same size"):
        ds[1]


def test_scan_split_counts(tiny_root: Path) -> None:
    stats = scan_split(tiny_root, "val")
    assert stats.images == 2 and stats.labelled == 2 and stats.cities == ("aachen", "zurich")
    assert stats.label_pixels[7] == 2 * (6 + 3 + 5) and stats.label_pixels[26] == 12
    assert stats.train_pixels[0] == 28 and stats.train_pixels[13] == 12
    assert stats.train_pixels[18] == 2 and stats.train_pixels[255] == 6
    assert stats.train_pixels.sum() == 2 * 24
    assert stats.train_images[13] == 2 and stats.train_images[5] == 0


def test_scan_split_rejects_train_ids_saved_as_label_ids(tiny_root: Path) -> None:
    path = CityscapesDataset(tiny_root, "val").label_paths[0]
    assert cv2.imwrite(str(path), np.full((4, 6), 200, np.uint8))
    with pytest.raises(DatasetError, match=r"values \[200\] outside"):
        scan_split(tiny_root, "val")


def test_dataset_on_generated_data(synth_root: Path) -> None:
    ds = CityscapesDataset(synth_root, "train")
    assert len(ds) == 6 and ds.names == sorted(ds.names)
    sample = ds[0]
    assert sample.image.shape == (128, 256, 3) and sample.label.shape == (128, 256)
    raw = cv2.imread(str(ds.label_paths[0]), cv2.IMREAD_UNCHANGED)
    assert ((raw == 26) == (sample.label == 13)).all()
    assert ((raw == 7) == (sample.label == 0)).all()


def test_cli_check(synth_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--root", str(synth_root), "--split", "val", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 images in 3 cities, 4 labelled" in out
    assert "traffic light" in out and "(ignored)" in out and out.rstrip().endswith("ok")
    shares = [float(line.split()[-2]) for line in out.splitlines() if line.strip().startswith(("0 ", "10 "))]
    assert len(shares) == 2 and all(0 < s < 100 for s in shares)


def test_cli_check_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--root", str(tmp_path / "missing"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data set root") and "Traceback" not in err
