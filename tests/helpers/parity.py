"""PyTorch vs ONNX Runtime parity of an exported file, computed independently of the exporter's verifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.preprocess import preprocess
from fornet.model import FoRNet, load_model, topk_counts


def images_of(root: Path, size: tuple[int, int], count: int = 2) -> list[np.ndarray]:
    """The first ``count`` images of the dataset at ``root`` resized to ``size`` (uint8 BGR)."""
    import cv2

    dataset = CityscapesDataset(root, "val", require_labels=False)
    return [cv2.resize(dataset[i].image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            for i in range(min(count, len(dataset)))]


def torch_logits(model: FoRNet, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's logits and concatenated gate masks for ``images``."""
    x = torch.from_numpy(np.stack([preprocess(im) for im in images]))
    with torch.no_grad():
        logits, _, masks = model(x)
    return logits.numpy(), torch.cat(masks, dim=1).numpy()


def _onnx_outputs(path: Path, feed: np.ndarray, batch: int | None) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if batch is None:
        return tuple(session.run(None, {"image": feed}))  # type: ignore[return-value]
    outs = [session.run(None, {"image": feed[i:i + 1]}) for i in range(len(feed))]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def check_parity(ckpt: Path, onnx_path: Path, images: list[np.ndarray], *, batch: int | None = 1,
                 max_diff: float | None, min_agreement: float) -> None:
    """Assert logits/argmax parity and exact per-ratio cell counts for ``onnx_path``."""
    model = load_model(ckpt)
    ref_logits, ref_masks = torch_logits(model, images)
    feed = np.stack([preprocess(im) for im in images])
    logits, masks = _onnx_outputs(onnx_path, feed, batch)
    logits = logits.astype(np.float32)
    agreement = float((logits.argmax(1) == ref_logits.argmax(1)).mean())
    assert agreement >= min_agreement, f"argmax agreement {agreement:.6f} < {min_agreement}"
    if max_diff is not None:
        assert float(np.abs(logits - ref_logits).max()) <= max_diff
    h, w = masks.shape[-2:]
    ks = topk_counts(h * w, model.config.ratios)
    np.testing.assert_array_equal(masks.sum(axis=(2, 3)), np.tile(ks, (len(images), 1)))
    assert float((masks == ref_masks).mean()) >= 0.99
