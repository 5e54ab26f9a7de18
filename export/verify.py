"""Export verification: PyTorch vs ONNX Runtime on real-looking images.

Images come from a Cityscapes-layout folder (``--verify-data``) or, by default, from scenes
generated with :func:`fornet.calibration.synth.generate_synthetic_cityscapes` into a temporary
folder. PyTorch runs the checkpoint's model (its own Top-K gate, FP32) on the images after the
project's one preprocessing (:func:`fornet.calibration.preprocess.preprocess`); ONNX Runtime runs
the exported file on the same images in the file's input format. The report gives the largest
absolute logit difference, the argmax agreement over all pixels and the number of selected
cells per ratio (which must equal the node's ``ks`` for every image).
"""
# ruff: noqa: TID253

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fornet.calibration.cityscapes import CityscapesDataset
from fornet.calibration.preprocess import preprocess
from fornet.calibration.synth import generate_synthetic_cityscapes
from fornet.calibration.synth_scene import MIN_SCENE_SIDE
from fornet.contract import INPUT_NAME, MASKS_NAME
from fornet.export.options import IOFormat
from fornet.model import FoRNet
from fornet.runtime.model_io import VerificationReport
from fornet.runtime.onnxrt import OnnxRuntimeBackend


def load_images(size: tuple[int, int], count: int, data_dir: str | os.PathLike[str] | None = None,
                split: str = "val", seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 images resized to ``size`` (OpenCV bilinear, as the preprocessing does).

    Without ``data_dir`` the images are generated scenes of ``size`` (drawn at least 32x32, then resized).
    """
    import cv2

    def read(root: str | os.PathLike[str]) -> list[np.ndarray]:
        dataset = CityscapesDataset(root, split, require_labels=False)
        images = [dataset[i % len(dataset)].image for i in range(count)]
        return [im if im.shape[:2] == tuple(size) else
                cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for im in images]

    if data_dir is not None:
        return read(data_dir)

    drawn = (max(size[0], MIN_SCENE_SIDE), max(size[1], MIN_SCENE_SIDE))
    with tempfile.TemporaryDirectory(prefix="fornet-verify-") as tmp:
        generate_synthetic_cityscapes(Path(tmp), train=0, val=count, size=drawn, seed=seed, progress=False)
        return read(tmp)


def _onnx_input(images: Sequence[np.ndarray], io: IOFormat, normalized: np.ndarray,
                float_dtype: type[np.floating]) -> np.ndarray:
    if io.input == "raw":
        batch = np.stack(images)
        return np.ascontiguousarray(batch[..., ::-1] if io.channel_order == "BGR" else batch)
    return normalized.astype(float_dtype)


def verify_onnx(model: FoRNet, onnx_path: str | os.PathLike[str], images: Sequence[np.ndarray], *,
                io: IOFormat, mean: Sequence[float], std: Sequence[float], batch: int,
                ks: Sequence[int], threshold: float, precision: str = "fp32",
                providers: Sequence[str] | None = None, progress: bool = True) -> VerificationReport:
    """Compare ``onnx_path`` on ONNX Runtime with ``model`` in PyTorch on ``images``.

    Args:
        model: the FoR-Net with its own gate, in eval mode.
        onnx_path: the exported file.
        images: RGB uint8 images of the export size.
        io: the file's input/output format.
        mean, std: the normalisation (the file folds it in for ``raw`` input).
        batch: images per run; the last run is padded with repeats (not counted).
        ks: the gate's k per ratio.
        threshold: argmax agreement needed to pass.
        precision: label of the file (``fp32``/``fp16``); ``fp16`` files with FP16 input get FP16.
        providers: ONNX Runtime execution providers (default: CPU).
        progress: show a progress bar.
    """
    agree = pixels = cells_agree = cells = 0
    max_diff = 0.0
    counts: set[tuple[int, ...]] = set()
    with OnnxRuntimeBackend(onnx_path, providers=providers or ["CPUExecutionProvider"]) as backend:
        float_dtype = backend.input_specs[INPUT_NAME].dtype.type
        output_name = io.output_names[0]
        starts = range(0, len(images), batch)
        for start in tqdm(starts, desc=f"verifying {precision}", unit="batch", disable=not progress):
            chunk = list(images[start:start + batch])
            used = len(chunk)
            chunk += [chunk[-1]] * (batch - used)
            normalized = np.stack([preprocess(im, None, mean, std) for im in chunk])
            with torch.no_grad():
                logits, _, masks = model(torch.from_numpy(normalized))
            ref_logits = logits.numpy()[:used]
            ref_masks = torch.cat(masks, dim=1).numpy()[:used]
            out = backend.infer({INPUT_NAME: _onnx_input(chunk, io, normalized, float_dtype)})
            got_masks = out[MASKS_NAME][:used].astype(np.float32)
            if io.output == "labels":
                labels = out[output_name][:used].astype(np.int64)
            else:
                got = out[output_name][:used].astype(np.float32)
                max_diff = max(max_diff, float(np.abs(got - ref_logits).max()))
                labels = got.argmax(axis=1)
            agree += int((labels == ref_logits.argmax(axis=1)).sum())
            pixels += labels.size
            cells_agree += int((got_masks == ref_masks).all(axis=1).sum())
            cells += got_masks[:, 0].size
            counts.update(tuple(int(c) for c in row) for row in got_masks.sum(axis=(2, 3)).round())
    selected, expected = [list(row) for row in sorted(counts)], [int(k) for k in ks]
    return VerificationReport(
        precision=precision, images=len(images),
        max_abs_logit_diff=None if io.output == "labels" else max_diff,
        argmax_agreement=agree / pixels, threshold=threshold, mask_agreement=cells_agree / cells,
        selected_cells=selected, expected_cells=expected,
        passed=agree / pixels >= threshold and selected == [expected],
    )
