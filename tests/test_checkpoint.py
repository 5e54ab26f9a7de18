"""Loading checkpoints in every layout users have, and the errors for the ones that don't fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fornet.model import CheckpointError, build_model, load_model, save_checkpoint
from fornet.model.checkpoint import read_state_dict
from tests.helpers.model_utils import realistic_model


@pytest.fixture(scope="module")
def r18_state() -> dict[str, torch.Tensor]:
    return realistic_model("r18", seed=5).state_dict()


def _assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("layout", ["bare", "model", "state_dict", "ddp", "ddp_in_model"])
def test_reference_layouts_load_and_variant_is_inferred(tmp_path: Path, r18_state, layout: str) -> None:
    ddp = {f"module.{k}": v for k, v in r18_state.items()}
    payload = {"bare": r18_state, "model": {"model": r18_state, "epoch": 3},
               "state_dict": {"state_dict": r18_state}, "ddp": ddp, "ddp_in_model": {"model": ddp}}[layout]
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    model = load_model(path)
    assert not model.training
    assert model.checkpoint_info.variant == "r18"
    _assert_same_weights(model, r18_state)


def test_project_format_round_trip_keeps_metadata(tmp_path: Path) -> None:
    model = build_model("lite", num_classes=5, channels=64)
    path = tmp_path / "run" / "best.pth"
    save_checkpoint(path, model, "lite", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                    train_config={"iters": 10}, extra={"iteration": 10})
    assert not list(path.parent.glob("*.tmp")), "atomic write left a temporary file"
    loaded = load_model(path)
    info = loaded.checkpoint_info
    assert (info.variant, info.config.num_classes, info.config.channels) == ("lite", 5, 64)
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.25, 0.25, 0.25)
    assert info.train_config == {"iters": 10}
    _assert_same_weights(loaded, model.state_dict())


def test_num_classes_inferred_from_classifier(tmp_path: Path) -> None:
    path = tmp_path / "c8.pth"
    torch.save(build_model("r18", num_classes=8).state_dict(), path)
    assert load_model(path).num_classes == 8


def test_mismatch_lists_keys_and_variants_tried(tmp_path: Path, r18_state) -> None:
    state = dict(r18_state)
    state.pop("classifier.bias")
    state["extra.weight"] = torch.zeros(1)
    state["trans.0.weight"] = torch.zeros(256, 100, 1, 1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    text = str(err.value)
    for expected in ("r101", "r50", "r34", "r18", "lite", "missing: classifier.bias",
                     "unexpected: extra.weight", "trans.0.weight: checkpoint (256, 100, 1, 1)"):
        assert expected in text
    with pytest.raises(CheckpointError, match=r"variant.*r50"):
        load_model(path, variant="r50")


def test_wrong_explicit_variant(tmp_path: Path, r18_state) -> None:
    path = tmp_path / "r18.pth"
    torch.save(r18_state, path)
    with pytest.raises(CheckpointError, match=r"r34"):
        load_model(path, variant="r34")


def test_missing_directory_corrupt_and_pickled_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="directory"):
        load_model(tmp_path)
    corrupt = tmp_path / "corrupt.pth"
    torch.save(build_model("lite").state_dict(), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(corrupt)
    pickled = tmp_path / "object.pth"
    torch.save(build_model("lite"), pickled)  # a whole module: needs unsafe unpickling
    with pytest.raises(CheckpointError, match="state_dict"):
        load_model(pickled)
    scalar = tmp_path / "scalar.pth"
    torch.save(torch.zeros(3), scalar)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_model(scalar)


def test_pretrained_backbone_from_torchvision_layout(tmp_path: Path) -> None:
    donor = realistic_model("r18", seed=9)
    tv = {}
    for key, value in donor.state_dict().items():
        if key.startswith("stem.0."):
            tv["conv1." + key[len("stem.0."):]] = value
        elif key.startswith("stem.1."):
            tv["bn1." + key[len("stem.1."):]] = value
        elif key.startswith("layer"):
            tv[key] = value
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(tv, path)
    model = build_model("r18", pretrained_backbone=path)
    assert torch.equal(model.layer4[1].conv2.weight, donor.layer4[1].conv2.weight)
    assert torch.equal(model.stem[0].weight, donor.stem[0].weight)
    with pytest.raises(Exception, match="resnet101 for r101"):
        build_model("r101", pretrained_backbone=path)


def test_read_state_dict_unwraps(tmp_path: Path, r18_state) -> None:
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in r18_state.items()}}, path)
    assert read_state_dict(path).keys() == r18_state.keys()
