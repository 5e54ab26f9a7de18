"""Reading and writing FoR-Net checkpoints.

Accepted inputs (all read with ``torch.load(weights_only=True)``):

* a bare reference ``state_dict`` (``torch.save(model.state_dict(), path)``),
* ``{"model": state_dict}`` or ``{"state_dict": state_dict}`` wrappers,
* DDP (``module.``) or ``torch.compile`` (``_orig_mod.``) key prefixes,
* this project's checkpoint format, which also records the variant, its configuration,
  the input normalisation and the training configuration.
"""
# ruff: noqa: TID253

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fornet.atomic import atomic_path
from fornet.model.config import IMAGENET_MEAN, IMAGENET_STD, VARIANTS, CheckpointInfo, FoRNetConfig
from fornet.model.errors import ModelError
from fornet.model.fornet import FoRNet
from fornet.readable import check_readable

CHECKPOINT_FORMAT = "fornet-deploy/checkpoint/1"
_PREFIXES = ("module.", "_orig_mod.")
#: First bytes of what torch.save writes: a zip archive (PyTorch >= 1.6) or a legacy pickle (protocol 2..5).
_ZIP_MAGIC = b"PK\x03\x04"


def _looks_like_torch_file(magic: bytes) -> bool:
    """Whether a file's first bytes can start a ``torch.save`` file."""
    return magic.startswith(_ZIP_MAGIC) or (len(magic) >= 2 and magic[0] == 0x80 and 2 <= magic[1] <= 5)


class CheckpointError(ModelError):
    """A checkpoint that is missing, unreadable, or does not fit any FoR-Net variant."""


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and errors that say what to do."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}; check the path (--ckpt)")
    if p.is_dir():
        raise CheckpointError(f"checkpoint path {p} is a directory; pass the .pth file inside it")
    with open(check_readable(p, "checkpoint"), "rb") as fh:
        magic = fh.read(4)
    if not _looks_like_torch_file(magic):
        raise CheckpointError(
            f"{p} is not a PyTorch checkpoint (it starts with bytes {magic.hex() or 'nothing: the file is empty'}, "
            "not a torch.save archive); the file is corrupt or of another format: copy it again, or re-save it "
            "with torch.save(model.state_dict(), path)"
        )
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise CheckpointError(f"{p} is a damaged PyTorch checkpoint (its pickled data cannot be read); the "
                                  "file is truncated or corrupt: copy it again or re-save it with torch.save") from exc
        raise CheckpointError(
            f"{p} holds a Python object ({found.group(1)}) besides tensors; this project loads checkpoints only as "
            "plain tensors (weights_only=True) so that no code in a file runs: re-save it from the code that wrote "
            "it as torch.save(model.state_dict(), path)"
        ) from exc
    except Exception as exc:
        raise CheckpointError(
            f"{p} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'truncated or corrupt'}); "
            "the file may be truncated or corrupt: copy it again or re-save it with torch.save"
        ) from exc


def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(state)
    for prefix in _PREFIXES:
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def split_checkpoint(obj: Any, source: str = "checkpoint") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Return ``(state_dict, metadata)`` from any accepted checkpoint layout."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state_dict; "
                              "save model.state_dict() instead of the model object")
    meta: dict[str, Any] = {}
    if obj.get("format") == CHECKPOINT_FORMAT:
        meta = {k: v for k, v in obj.items() if k != "model"}
        state = obj["model"]
    elif isinstance(obj.get("model"), Mapping):
        state = obj["model"]
    elif isinstance(obj.get("state_dict"), Mapping):
        state = obj["state_dict"]
    else:
        state = obj
    state = _strip_prefixes(state)
    non_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not state or non_tensors:
        raise CheckpointError(
            f"{source} does not look like a FoR-Net state_dict "
            f"({'empty' if not state else f'non-tensor entries such as {non_tensors[:3]}'}); "
            "expected a bare state_dict, {'model': sd}, {'state_dict': sd} or a fornet checkpoint"
        )
    return state, meta


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The weights of any accepted checkpoint file."""
    return split_checkpoint(read_checkpoint(path), str(path))[0]


def _expected_shapes(config: FoRNetConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = FoRNet(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _diff(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Tensor]) -> dict[str, list[str]]:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {expected[k]}"
        for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k]
    )
    return {"missing": missing, "unexpected": unexpected, "mis-shaped": misshaped}


def _format_diff(name: str, diff: dict[str, list[str]], limit: int = 6) -> str:
    parts = []
    for kind, keys in diff.items():
        if keys:
            shown = ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
            parts.append(f"    {kind}: {shown}")
    return f"  {name}:\n" + "\n".join(parts)


def infer_config(state: Mapping[str, Tensor], variant: str | None = None,
                 source: str = "checkpoint") -> tuple[str, FoRNetConfig]:
    """Find the variant whose key names and shapes equal ``state``'s exactly."""
    classifier = state.get("classifier.weight")
    num_classes = int(classifier.shape[0]) if classifier is not None else 19
    candidates = [variant] if variant else list(VARIANTS)
    report = []
    for name in candidates:
        config = dataclasses.replace(VARIANTS[name], num_classes=num_classes)
        diff = _diff(_expected_shapes(config), state)
        if not any(diff.values()):
            return name, config
        report.append(_format_diff(name, diff))
    raise CheckpointError(
        f"{source} does not match the FoR-Net variant(s) tried "
        f"({', '.join(candidates)}; {num_classes} classes):\n" + "\n".join(report)
        + "\nPass --variant for the architecture it was trained with, or check that the file "
          "is a FoR-Net checkpoint."
    )


def load_model(path: str | os.PathLike[str], variant: str | None = None,
               map_location: Any = "cpu") -> FoRNet:
    """Load a FoR-Net from any accepted checkpoint, in eval mode.

    The variant comes from the checkpoint's metadata when it has some, else from matching key
    names and shapes against every variant (or only ``variant`` when given). On a mismatch a
    :class:`CheckpointError` lists missing, unexpected and mis-shaped keys per variant tried.
    The returned model carries a :class:`CheckpointInfo` as ``model.checkpoint_info``.
    """
    if variant is not None and variant not in VARIANTS:
        raise CheckpointError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    state, meta = split_checkpoint(read_checkpoint(path, map_location), str(path))
    if meta:
        config = FoRNetConfig.from_dict(meta["config"])
        name = meta.get("variant")
        if variant is not None and name is not None and variant != name:
            raise CheckpointError(f"{path} was saved for variant {name!r}, not {variant!r}; "
                                  "drop --variant or pass the matching one")
        diff = _diff(_expected_shapes(config), state)
        if any(diff.values()):
            raise CheckpointError(f"{path} is inconsistent with its own configuration:\n"
                                  + _format_diff(str(name), diff))
    else:
        name, config = infer_config(state, variant, str(path))
    model = FoRNet(config)
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    model.checkpoint_info = CheckpointInfo(
        path=str(path), variant=name, config=config,
        mean=tuple(meta.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(meta.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        train_config=dict(meta.get("train_config", {})),
    )
    return model


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, variant: str | None,
                    *, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                    train_config: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write a project checkpoint atomically (temp file + rename).

    ``extra`` holds resumable state (optimizer, scheduler, iteration) as plain tensors and
    numbers so the file stays loadable with ``weights_only=True``.
    """
    module = model.module if hasattr(model, "module") else model
    if not isinstance(module, FoRNet):
        raise TypeError(f"expected a FoRNet, got {type(module).__name__}")
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "variant": variant,
        "config": module.config.to_dict(),
        "mean": list(mean),
        "std": list(std),
        "train_config": dict(train_config or {}),
        **dict(extra or {}),
        "model": module.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
