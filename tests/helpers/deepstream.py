"""Helpers of the DeepStream tests: nvinfer's segmentation parser as its C++ loop reads, and a street frame."""

from __future__ import annotations

import numpy as np


def nvinfer_loop(scores: np.ndarray, threshold: float) -> np.ndarray:
    """nvinfer's ``fillSegmentationOutput``, transcribed loop for loop (``C x H x W`` scores -> int32 labels)."""
    classes, height, width = scores.shape
    class_map = np.empty((height, width), dtype=np.int32)
    for y in range(height):
        for x in range(width):
            max_prob, cls = -1.0, -1
            for c in range(classes):
                prob = float(scores[c, y, x])
                if prob > max_prob and prob > threshold:
                    cls, max_prob = c, prob
            class_map[y, x] = cls
    return class_map


def awkward_scores(classes: int, height: int, width: int, seed: int) -> np.ndarray:
    """``C x H x W`` float32 scores with what a parser gets wrong: ties (the first class wins), pixels whose
    scores are all below -1 (nvinfer's starting maximum), NaN, and scores either side of 0."""
    scores = np.random.default_rng(seed).normal(0.0, 1.5, (classes, height, width)).astype(np.float32)
    scores[:, 0, :4] = 0.25
    scores[:, 1, :4] = -2.0
    scores[2, 2, :4] = np.nan
    return scores
