"""The ``--int8`` options of ``fornet export``, importable without onnx or torch (``fornet export --help``
reads them here; :mod:`fornet.export.int8.pipeline` runs them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fornet.calibration.int8_calibrate import CALIB_METHODS, DEFAULT_CALIB_IMAGES
from fornet.export.errors import ExportError
from fornet.export.int8.accuracy_gate import DEFAULT_MAX_MIOU_DROP
from fornet.export.tensorrt.calibration_cache import DEFAULT_TRT_VERSION, trt_version_number
from fornet.options import OptionGroup, option

INT8 = OptionGroup(
    "INT8 (fornet_int8_tensorrt.onnx: Q/DQ laid out for TensorRT 10/11 on an FP16 base; fornet_int8.onnx: Q/DQ "
    "for ONNX Runtime; fornet.calib.cache: the same ranges for TensorRT 10.x implicit INT8; fornet_int8.json: "
    "manifest)")


@dataclass(frozen=True)
class Int8Options:
    """The ``--int8`` flags, as a value.

    Attributes:
        calib_data: Cityscapes-layout folder with calibration images (labels not needed).
        calib_split: split of ``calib_data`` to calibrate on.
        calib_images: number of calibration images (spread over the split; all if fewer).
        calib_method: ``entropy``, ``percentile`` or ``minmax``.
        max_miou_drop: largest accepted mIoU drop in points.
        accuracy_gate: score FP32 and INT8 on a labelled split and enforce ``max_miou_drop``.
        eval_data: labelled folder for the gate (default: ``calib_data``).
        eval_split: split of ``eval_data`` for the gate.
        eval_images: score only the first N images (default: all).
        fallback_sensitive: when the gate fails, keep the most sensitive layers in FP32.
        max_fallback_layers: at most this many layers kept in FP32 by the fallback.
        sensitivity_images: calibration images used to measure per-layer sensitivity.
        recalibrate: calibrate even when the folder holds a calibration (replacing it).
        trt_cache_version: TensorRT version written into the cache header.
        tensorrt: also write ``fornet_int8_tensorrt.onnx`` (needs the ``int8-tensorrt`` extra).
    """

    calib_data: Path = option(flag="--calib-data", parse=Path, metavar="DIR", group=INT8,
                              help="Cityscapes-layout folder with calibration images (needed with --int8; labels "
                                   "not needed)")
    calib_split: str = option("train", flag="--calib-split", help="split of --calib-data to calibrate on",
                              group=INT8)
    calib_images: int = option(DEFAULT_CALIB_IMAGES, flag="--calib-images", parse=int, metavar="N", group=INT8,
                               default_text=f"{DEFAULT_CALIB_IMAGES} or all",
                               help="calibration images, spread over the split")
    calib_method: str = option("entropy", flag="--calib-method", choices=CALIB_METHODS, group=INT8,
                               help="activation ranges: entropy (TensorRT's KL method), percentile (99.99%) or "
                                    "minmax")
    max_miou_drop: float = option(DEFAULT_MAX_MIOU_DROP, flag="--max-miou-drop", parse=float, metavar="POINTS",
                                  group=INT8, help="refuse the INT8 files when mIoU drops more than this")
    accuracy_gate: bool = option(True, flag="--no-accuracy-gate", group=INT8,
                                 help="skip scoring FP32 vs INT8 on a labelled split (and the --max-miou-drop "
                                      "check)")
    eval_data: Path | None = option(None, flag="--eval-data", parse=Path, metavar="DIR", group=INT8,
                                    default_text="--calib-data",
                                    help="labelled Cityscapes-layout folder for the accuracy gate")
    eval_split: str = option("val", flag="--eval-split", help="split scored by the accuracy gate", group=INT8)
    eval_images: int | None = option(None, flag="--eval-images", parse=int, metavar="N", default_text="all",
                                     help="score only the first N images", group=INT8)
    fallback_sensitive: bool = option(False, flag="--fallback-sensitive", group=INT8,
                                      help="when the gate fails, measure per-layer sensitivity and keep the most "
                                           "sensitive layers in FP32 until it passes")
    max_fallback_layers: int = option(8, flag="--max-fallback-layers", parse=int, metavar="N", group=INT8,
                                      help="most layers --fallback-sensitive keeps in FP32")
    sensitivity_images: int = option(4, flag="--sensitivity-images", parse=int, metavar="N", group=INT8,
                                     help="calibration images used to measure per-layer sensitivity")
    recalibrate: bool = option(False, flag="--recalibrate", group=INT8,
                               help="calibrate again even if the output folder holds a calibration (replaces it)")
    trt_cache_version: str = option(DEFAULT_TRT_VERSION, flag="--trt-cache-version", metavar="X.Y.Z", group=INT8,
                                    default_text=f"{DEFAULT_TRT_VERSION}, JetPack 6.1/6.2",
                                    help="TensorRT version of the cache header, as on the device")
    tensorrt: bool = option(True, flag="--no-tensorrt-int8", group=INT8,
                            help="skip fornet_int8_tensorrt.onnx (the Q/DQ file laid out for TensorRT on an FP16 base; "
                                 "it needs `pip install 'fornet-deploy[int8-tensorrt]'`)")

    def validate(self) -> None:
        """Raise :class:`ExportError` (or the cache's version error) for values that cannot work."""
        if self.calib_method not in CALIB_METHODS:
            raise ExportError(f"unknown calibration method {self.calib_method!r}; choose one of "
                              f"{', '.join(CALIB_METHODS)}")
        for flag, value in (("--calib-images", self.calib_images), ("--max-fallback-layers", self.max_fallback_layers),
                            ("--sensitivity-images", self.sensitivity_images), ("--eval-images", self.eval_images)):
            if value is not None and value < 1:
                raise ExportError(f"{flag} must be at least 1, got {value}")
        if not self.max_miou_drop >= 0.0:
            raise ExportError(f"--max-miou-drop must be >= 0 points, got {self.max_miou_drop}; e.g. 1.0")
        if self.fallback_sensitive and not self.accuracy_gate:
            raise ExportError("--fallback-sensitive needs the accuracy gate to decide when to stop; "
                              "drop --no-accuracy-gate")
        trt_version_number(self.trt_cache_version)
