"""Procedurally generated street scenes written in the Cityscapes folder layout.

The real data set needs a registered download, so tests, demos and CI use scenes generated
here (drawn by :mod:`fornet.calibration.synth_scene`). Every scene is drawn from its own random
stream derived from ``(seed, split, index)``, so the files are bit-identical for a seed, and a
scene does not depend on how many others are made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fornet.atomic import write_bytes_atomic, write_text_atomic
from fornet.calibration.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX
from fornet.calibration.labels import LABEL_COLORS
from fornet.calibration.synth_scene import RARE, SynthError, check_size, render_scene

__all__ = ["MARKER", "SynthError", "generate_synthetic_cityscapes", "prepare_output_root", "render_scene",
           "write_sample"]

#: Name of the marker file that identifies a generated data set.
MARKER = "fornet_synthetic.json"
#: Cities used for each split when ``cities`` is not given (real Cityscapes city names).
DEFAULT_CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster")}
_SPLIT_CODES = {"train": 1, "val": 2}
_FORCED_PER_SCENE = 3


def _encode_png(array: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported dtypes
        raise SynthError("OpenCV could not encode a PNG; check the opencv-python-headless install")
    return buf.tobytes()


def _forced_classes(index: int) -> list[int]:
    return [RARE[(_FORCED_PER_SCENE * index + j) % len(RARE)] for j in range(_FORCED_PER_SCENE)]


def write_sample(root: Path, split: str, city: str, seq: int, image: np.ndarray, label_ids: np.ndarray,
                 instance_ids: np.ndarray) -> str:
    """Write one scene's image and its three gtFine files atomically; returns the stem."""
    import cv2

    stem = f"{city}_{seq:06d}_{19:06d}"
    image_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    write_bytes_atomic(image_dir / f"{stem}{IMAGE_SUFFIX}", _encode_png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))
    write_bytes_atomic(gt_dir / f"{stem}{LABEL_SUFFIX}", _encode_png(label_ids))
    color = LABEL_COLORS[label_ids][:, :, ::-1]
    write_bytes_atomic(gt_dir / f"{stem}_gtFine_color.png", _encode_png(np.ascontiguousarray(color)))
    write_bytes_atomic(gt_dir / f"{stem}_gtFine_instanceIds.png", _encode_png(instance_ids))
    return stem


def generate_synthetic_cityscapes(root: str | os.PathLike[str], train: int = 48, val: int = 12,
                                  size: tuple[int, int] = (256, 512), seed: int = 0,
                                  cities: Sequence[str] | None = None, progress: bool = True) -> Path:
    """Generate a Cityscapes-format data set of street scenes under ``root``.

    Writes ``leftImg8bit/{train,val}/<city>/<city>_<seq:06d>_000019_leftImg8bit.png`` and the
    ``gtFine`` ``_labelIds``, ``_color`` and ``_instanceIds`` (uint16) PNGs, plus a
    ``fornet_synthetic.json`` marker with the parameters. Files are written atomically and are
    bit-identical for the same arguments. Every split with at least four scenes shows all 19
    training classes.

    Args:
        root: output folder (created if needed).
        train, val: number of scenes per split.
        size: ``(H, W)`` of every image.
        seed: seed of the whole data set.
        cities: city names the scenes of each split are spread over (round robin); by default
            three real Cityscapes cities per split.
        progress: show a progress bar.

    Returns:
        ``root`` as a Path.

    Raises:
        SynthError: negative counts, a too-small size or an empty city list.
        FornetError: the folder cannot be written.
    """
    root = Path(root)
    if train < 0 or val < 0 or train + val == 0:
        raise SynthError(f"need a positive number of scenes, got train={train} val={val}")
    if cities is not None and (not cities or any(not c or "_" in c or "/" in c for c in cities)):
        raise SynthError(f"cities must be non-empty names without '_' or '/', got {list(cities)!r}")
    h, w = check_size(size)
    jobs = [(split, i) for split, n in (("train", train), ("val", val)) for i in range(n)]
    from tqdm import tqdm

    for split, i in tqdm(jobs, desc="generating scenes", unit="img", disable=not progress):
        names = tuple(cities) if cities is not None else DEFAULT_CITIES[split]
        image, label_ids, instance_ids = render_scene(size, (seed, _SPLIT_CODES[split], i), _forced_classes(i))
        write_sample(root, split, names[i % len(names)], i // len(names), image, label_ids, instance_ids)
    meta = {"generator": "fornet.calibration.synth", "train": train, "val": val, "size": [h, w],
            "seed": seed, "cities": list(cities) if cities is not None else None}
    write_text_atomic(root / MARKER, json.dumps(meta, indent=2) + "\n")
    return root


def prepare_output_root(root: str | os.PathLike[str], force: bool = False) -> list[str]:
    """Make ``root`` ready for :func:`generate_synthetic_cityscapes`; returns warnings to show.

    A root that already holds images or labels is refused unless ``force``. With ``force``, the
    ``train``/``val`` splits of a previously *generated* data set (marked by
    ``fornet_synthetic.json``) are deleted first so no stale scenes remain; other data (which may
    be the real Cityscapes) is never deleted, only written into.

    Raises:
        SynthError: the root holds a data set and ``force`` is False.
    """
    import shutil

    root = Path(root)
    existing = [root / top for top in ("leftImg8bit", "gtFine") if (root / top).is_dir()
                and any((root / top).iterdir())]
    if not existing:
        return []
    if not force:
        folders = " and ".join(f"{p.name}/" for p in existing)
        raise SynthError(f"{root} already holds a data set ({folders} not empty); choose an empty --out, "
                         "or pass --force to replace the generated splits")
    if not (root / MARKER).is_file():
        return [f"{root} holds data not generated by fornet-data synth; generated files are written into "
                "it and existing files are kept"]
    for top in existing:
        for split in _SPLIT_CODES:
            shutil.rmtree(top / split, ignore_errors=True)
    return []
