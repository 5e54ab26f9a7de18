"""A class colour legend drawn under an overlay image: which colour is which class, and what the mark means."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_ROW_PX = 18
_SWATCH_PX = 12
_FONT_SCALE = 0.4


def with_legend(image: np.ndarray, labels: np.ndarray, names: Sequence[str], palette_bgr: np.ndarray,
                mark: tuple[str, tuple[int, int, int]] | None = None) -> np.ndarray:
    """``image`` (BGR) above a legend of the classes present in ``labels``, most pixels first, each as a swatch
    of its ``palette_bgr`` colour and its name, then ``mark`` (text, BGR colour) when given."""
    import cv2

    counts = np.bincount(labels.ravel(), minlength=len(names))[:len(names)]
    entries = [(names[c], tuple(int(v) for v in palette_bgr[c])) for c in np.argsort(-counts, kind="stable")
               if counts[c]]
    if mark is not None:
        entries.append(mark)
    width = image.shape[1]
    rows: list[list[tuple[str, tuple[int, ...], int]]] = [[]]
    x = 4
    for text, colour in entries:
        size = _SWATCH_PX + 4 + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, 1)[0][0] + 10
        if x + size > width and rows[-1]:
            rows.append([])
            x = 4
        rows[-1].append((text, colour, x))
        x += size
    strip = np.full((_ROW_PX * len(rows) + 4, width, 3), 255, np.uint8)
    for row, items in enumerate(rows):
        top = 4 + row * _ROW_PX
        for text, colour, left in items:
            cv2.rectangle(strip, (left, top), (left + _SWATCH_PX, top + _SWATCH_PX), colour, -1)
            cv2.rectangle(strip, (left, top), (left + _SWATCH_PX, top + _SWATCH_PX), (0, 0, 0), 1)
            cv2.putText(strip, text, (left + _SWATCH_PX + 4, top + _SWATCH_PX - 2), cv2.FONT_HERSHEY_SIMPLEX,
                        _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([image, strip])
