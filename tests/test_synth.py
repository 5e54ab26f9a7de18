"""The generated data set: layout, label files, class coverage, determinism, difficulty and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers import labels as official

from fornet.calibration.synth import (
    MARKER,
    SynthError,
    SyntheticDataset,
    generate_synthetic_cityscapes,
    prepare_output_root,
)
from fornet.cli.data import main
from fornet.errors import FornetError

KINDS = ("gtFine_labelIds", "gtFine_color", "gtFine_instanceIds")


def _stems(root: Path, split: str) -> list[str]:
    return sorted(p.name[: -len("_leftImg8bit.png")] for p in (root / "leftImg8bit" / split).glob("*/*.png"))


def _gt(root: Path, split: str, stem: str, kind: str) -> np.ndarray:
    path = root / "gtFine" / split / stem.split("_")[0] / f"{stem}_{kind}.png"
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None, path
    return array


def _train_ids(label_ids: np.ndarray) -> np.ndarray:
    """labelIds -> trainIds with cityscapesscripts' table (independent of fornet.calibration.labels)."""
    lut = np.full(256, 255, np.uint8)
    for lab in official.labels:
        if lab.id >= 0 and 0 <= lab.trainId < 255:
            lut[lab.id] = lab.trainId
    return lut[label_ids]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(synth_root: Path) -> None:
    for split, n in (("train", 6), ("val", 4)):
        stems = _stems(synth_root, split)
        assert len(stems) == n
        for stem in stems:
            city, seq, frame = stem.split("_")
            assert len(seq) == len(frame) == 6 and seq.isdigit() and frame.isdigit()
            image = cv2.imread(str(synth_root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"),
                               cv2.IMREAD_UNCHANGED)
            assert image.shape == (128, 256, 3) and image.dtype == np.uint8
            for kind in KINDS:
                assert _gt(synth_root, split, stem, kind).shape[:2] == (128, 256)
    assert set(_stems(synth_root, "train")).isdisjoint(_stems(synth_root, "val"))
    assert not list(synth_root.rglob("*.tmp"))


def test_every_class_appears_in_each_split(synth_root: Path) -> None:
    for split in ("train", "val"):
        counts = np.zeros(256, np.int64)
        for stem in _stems(synth_root, split):
            counts += np.bincount(_train_ids(_gt(synth_root, split, stem, "gtFine_labelIds")).ravel(),
                                  minlength=256)
        missing = [official.trainId2label[k].name for k in range(19) if counts[k] == 0]
        assert not missing, f"{split} lacks {missing}"
        assert counts[255] > 0  # ignored labelIds are exercised too
        assert counts[:19].max() < 0.5 * counts.sum()


def test_color_and_instance_files_are_consistent(synth_root: Path) -> None:
    palette = np.zeros((256, 3), np.uint8)
    for lab in official.labels:
        if lab.id >= 0:
            palette[lab.id] = lab.color
    with_instances = {lab.id for lab in official.labels if lab.hasInstances and lab.id >= 0}
    instance_count = 0
    for stem in _stems(synth_root, "train"):
        ids = _gt(synth_root, "train", stem, "gtFine_labelIds")
        assert ids.ndim == 2 and ids.dtype == np.uint8 and ids.max() <= 33
        color = _gt(synth_root, "train", stem, "gtFine_color")[:, :, ::-1]  # BGR file -> RGB
        np.testing.assert_array_equal(color, palette[ids])
        inst = _gt(synth_root, "train", stem, "gtFine_instanceIds")
        assert inst.dtype == np.uint16
        has = np.isin(ids, list(with_instances))
        np.testing.assert_array_equal(inst[~has], ids[~has])
        np.testing.assert_array_equal(inst[has] // 1000, ids[has])
        instance_count += len(np.unique(inst[has]))
    assert instance_count >= 6 * 3


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    kwargs = {"train": 2, "val": 1, "size": (64, 96), "progress": False}
    a = _files(generate_synthetic_cityscapes(tmp_path / "a", seed=3, **kwargs))
    b = _files(generate_synthetic_cityscapes(tmp_path / "b", seed=3, **kwargs))
    c = _files(generate_synthetic_cityscapes(tmp_path / "c", seed=4, **kwargs))
    assert len(a) == 3 * 4 + 1 and a == b
    images = [k for k in a if k.endswith("_leftImg8bit.png")]
    assert all(a[k] != c[k] for k in images)
    # a scene does not depend on how many others are generated
    d = _files(generate_synthetic_cityscapes(tmp_path / "d", seed=3, train=1, val=0, size=(64, 96),
                                             progress=False))
    assert all(d[k] == a[k] for k in d if k.endswith(".png"))


def test_custom_cities(tmp_path: Path) -> None:
    root = generate_synthetic_cityscapes(tmp_path, train=3, val=1, size=(64, 96), cities=["ulm", "essen"],
                                         progress=False)
    assert _stems(root, "train") == ["essen_000000_000019", "ulm_000000_000019", "ulm_000001_000019"]
    assert _stems(root, "val") == ["ulm_000000_000019"]


def _colour_key(image: np.ndarray) -> np.ndarray:
    q = (image // 32).astype(np.int64)
    return q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]  # 8 levels per channel


def _context_key(image: np.ndarray) -> np.ndarray:
    """Colour, image row (8 bands) and local contrast (4 levels): cues a network can pick up."""
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    texture = np.minimum(np.abs(grey - cv2.blur(grey, (5, 5))) / 3, 3).astype(np.int64)
    rows = (np.arange(h) * 8 // h)[:, None].repeat(w, axis=1)
    return (_colour_key(image) * 8 + rows) * 4 + texture


def _lookup_scores(root: Path, key_fn) -> tuple[float, float, float]:
    """Fit a per-key majority-label table on train; (accuracy, mIoU, majority-class accuracy) on val."""
    def pixels(split: str) -> tuple[np.ndarray, np.ndarray]:
        keys, labels = [], []
        for stem in _stems(root, split):
            image = cv2.imread(str(root / "leftImg8bit" / split / stem.split("_")[0] / f"{stem}_leftImg8bit.png"))
            keys.append(key_fn(image).ravel())
            labels.append(_train_ids(_gt(root, split, stem, "gtFine_labelIds")).ravel())
        return np.concatenate(keys), np.concatenate(labels)

    keys, labels = pixels("train")
    valid = labels != 255
    table = np.zeros((2048 * 8 * 4, 19), np.int64)
    np.add.at(table, (keys[valid], labels[valid]), 1)
    keys, labels = pixels("val")
    valid = labels != 255
    predicted = table.argmax(1)[keys[valid]]
    truth = labels[valid].astype(np.int64)
    conf = np.bincount(truth * 19 + predicted, minlength=361).reshape(19, 19)
    iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
    return float((predicted == truth).mean()), float(iou.mean()), float(np.bincount(truth).max() / truth.size)


def test_colour_alone_does_not_determine_the_class(synth_root: Path) -> None:
    accuracy, miou, _ = _lookup_scores(synth_root, _colour_key)
    assert accuracy < 0.75 and miou < 0.3


def test_position_and_texture_make_classes_learnable(synth_root: Path) -> None:
    colour_accuracy, _, _ = _lookup_scores(synth_root, _colour_key)
    accuracy, _, majority = _lookup_scores(synth_root, _context_key)
    assert accuracy > majority + 0.2
    assert accuracy > colour_accuracy + 0.08


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"train": -1}, "positive number"),
    ({"train": 0, "val": 0}, "positive number"),
    ({"size": (16, 64)}, "too small"),
    ({"cities": []}, "cities"),
    ({"cities": ["a_b"]}, "cities"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(SynthError, match=match):
        generate_synthetic_cityscapes(tmp_path, progress=False, **kwargs)


def test_cli_synth_refuses_existing_data_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    args = ["synth", "--out", str(out), "--size", "64x96", "--seed", "1", "--quiet"]
    assert main([*args, "--train", "3", "--val", "1"]) == 0
    assert "wrote 3 train and 1 val scenes of 64x96" in capsys.readouterr().out
    assert len(_stems(out, "train")) == 3
    assert main([*args, "--train", "1", "--val", "1"]) == 2
    assert "already holds a data set" in capsys.readouterr().err
    assert len(_stems(out, "train")) == 3
    assert main([*args, "--train", "1", "--val", "1", "--force"]) == 0
    assert len(_stems(out, "train")) == 1  # the stale scenes are gone
    assert len(list((out / "gtFine" / "train").rglob("*.png"))) == 3


def test_force_never_deletes_foreign_data(tmp_path: Path) -> None:
    real = tmp_path / "leftImg8bit" / "train" / "bonn"
    real.mkdir(parents=True)
    (real / "bonn_000000_000019_leftImg8bit.png").write_bytes(b"user data")
    with pytest.raises(FornetError, match="--force"):
        prepare_output_root(tmp_path)
    warnings = prepare_output_root(tmp_path, force=True)
    assert len(warnings) == 1 and "not generated" in warnings[0]
    assert (real / "bonn_000000_000019_leftImg8bit.png").read_bytes() == b"user data"


def test_force_keeps_data_whose_marker_is_damaged(tmp_path: Path) -> None:
    generate_synthetic_cityscapes(tmp_path, train=1, val=1, size=(64, 96), progress=False)
    marker = SyntheticDataset.load(tmp_path / MARKER)
    assert marker.train == 1 and marker.size == (64, 96) and marker.cities is None
    (tmp_path / MARKER).write_text(json.dumps({"generator": "someone else", "train": "all"}))
    with pytest.raises(FornetError, match=r"fornet_synthetic.json is a damaged .*train: .*yourself"):
        prepare_output_root(tmp_path, force=True)
    assert len(_stems(tmp_path, "train")) == 1, "nothing is deleted on the word of a damaged marker"


def test_markers_written_before_the_format_tag_still_load(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text(json.dumps({"generator": "fornet.calibration.synth", "train": 48, "val": 12,
                                               "size": [256, 512], "seed": 0, "cities": ["aachen"]}))
    assert SyntheticDataset.load(tmp_path / MARKER) == SyntheticDataset("fornet.calibration.synth", 48, 12,
                                                                        (256, 512), 0, ("aachen",))


def test_cli_bad_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path), "--size", "64"])
    assert exc.value.code == 2 and "HxW" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path), "--size", "16x16", "--quiet"]) == 2
    assert "error: size 16x16 is too small" in capsys.readouterr().err


def test_cli_video_writes_a_decodable_pan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import av

    out = tmp_path / "street.mp4"
    assert main(["video", "--out", str(out), "--size", "64x128", "--frames", "6", "--fps", "10"]) == 0
    assert "wrote" in capsys.readouterr().out
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (64, 128, 3)
    assert not (frames[0] == frames[-1]).all()  # the camera pans
    assert main(["video", "--out", str(tmp_path / "none.mp4"), "--frames", "0"]) == 2
    assert "--frames must be at least 1" in capsys.readouterr().err


@pytest.mark.fault
def test_cli_video_refuses_an_existing_file_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One rule for fornet data: like `synth`, `video` replaces what is there only with --force."""
    out = tmp_path / "street.mp4"
    args = ["video", "--out", str(out), "--size", "64x128", "--frames", "2"]
    out.write_bytes(b"my recording")
    assert main(args) == 2
    assert f"error: {out} already exists; choose another --out, or pass --force to replace it" in \
        capsys.readouterr().err
    assert out.read_bytes() == b"my recording"
    assert main([*args, "--force"]) == 0 and out.stat().st_size > 100


def test_cli_check_requires_labels_unless_unlabelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = generate_synthetic_cityscapes(tmp_path / "d", train=1, val=2, size=(64, 128), seed=0, progress=False)
    next((root / "gtFine" / "val").rglob("*_labelIds.png")).unlink()
    assert main(["check", "--root", str(root), "--split", "val", "--quiet"]) == 2
    assert "have no label" in capsys.readouterr().err
    assert main(["check", "--root", str(root), "--split", "val", "--quiet", "--unlabelled"]) == 0
