"""nvinfer's segmentation parser (``network-type=2``), emulated: how DeepStream turns scores into labels.

nvinfer (``nvdsinfer_context_impl_output_parsing.cpp``, ``fillSegmentationOutput``) walks every pixel::

    max_prob = -1; cls = -1
    for c in classes:
        if prob[c] > max_prob and prob[c] > segmentation-threshold: cls = c; max_prob = prob[c]

so a pixel gets the first class with the largest score among the scores above both the threshold
and -1, and -1 ("unlabelled") when there is none. A plain argmax of the same scores differs exactly
where no score passes: raw logits whose best is <= the threshold (or <= -1).
"""

from __future__ import annotations

import numpy as np

#: The label nvinfer gives a pixel none of whose scores passes.
UNLABELLED = -1
#: nvinfer's starting ``max_prob``: a score must also exceed it.
_START_SCORE = -1.0


def parse_segmentation(scores: np.ndarray, threshold: float, order: int = 0) -> np.ndarray:
    """The ``H x W`` int32 class map nvinfer computes from one frame's scores.

    Args:
        scores: ``C x H x W`` (``order`` 0, ``segmentation-output-order=0``) or ``H x W x C`` (``order`` 1);
            any float type (nvinfer casts the layer to float32 first).
        threshold: ``segmentation-threshold``.
        order: ``segmentation-output-order``.
    """
    planes = np.asarray(scores, dtype=np.float32)
    if order == 1:
        planes = planes.transpose(2, 0, 1)
    passing = (planes > threshold) & (planes > _START_SCORE)
    candidates = np.where(passing, planes, -np.inf)
    labels = np.argmax(candidates, axis=0).astype(np.int32)  # the first of equal maxima, as the strict > does
    labels[~passing.any(axis=0)] = UNLABELLED
    return labels
