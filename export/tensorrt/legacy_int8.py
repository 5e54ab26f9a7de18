"""Legacy implicit INT8 for TensorRT 10.x (JetPack 6): a calibrator that serves a cache file.

TensorRT 11 removed implicit INT8 (``BuilderFlag.INT8``, ``IInt8*Calibrator``,
``config.int8_calibrator``); there INT8 means a Q/DQ ONNX (``fornet_int8.onnx``) built strongly
typed. Every use of those names sits behind a ``hasattr`` guard, so this module imports and
type-checks against both versions; on 11.x the guard raises :class:`LegacyInt8UnavailableError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fornet.export.tensorrt.calibration_cache import CalibrationCache
from fornet.export.tensorrt.errors import TensorRTBuildError

if TYPE_CHECKING:
    import tensorrt as trt

_REMOVED_IN_11 = (
    "has no implicit INT8 (removed in TensorRT 11); build the Q/DQ graph fornet_int8.onnx strongly "
    "typed instead (drop --legacy-int8-cache)"
)


class LegacyInt8UnavailableError(TensorRTBuildError):
    """This TensorRT has no implicit INT8 calibration."""


def require_legacy_int8() -> None:
    """Raise :class:`LegacyInt8UnavailableError` unless this TensorRT has implicit INT8."""
    import tensorrt as trt

    if not (hasattr(trt.BuilderFlag, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2")):
        raise LegacyInt8UnavailableError(f"TensorRT {trt.__version__} {_REMOVED_IN_11}")


def enable_legacy_int8(config: trt.IBuilderConfig, cache: CalibrationCache,
                       profile: trt.IOptimizationProfile | None) -> Any:
    """Set ``BuilderFlag.INT8`` and a calibrator serving ``cache`` on ``config``.

    ``profile``: the optimisation profile of a network with a dynamic batch, set as the calibration
    profile too (TensorRT 10.x requires one when implicit INT8 calibrates a network with runtime
    dimensions, ``IBuilderConfig::setCalibrationProfile``); ``None`` for a fixed-shape network.

    Returns the calibrator; keep a reference to it until the build has finished.
    """
    import tensorrt as trt

    if (
        hasattr(trt.BuilderFlag, "INT8")
        and hasattr(config, "int8_calibrator")
        and hasattr(trt, "IInt8EntropyCalibrator2")
    ):
        cached = cache.data

        class CacheCalibrator(trt.IInt8EntropyCalibrator2):
            """Serves the cache; has no images, so TensorRT must not need to recalibrate."""

            def __init__(self) -> None:
                trt.IInt8EntropyCalibrator2.__init__(self)

            def get_batch_size(self) -> int:
                return 1

            # The stubs type the result as list[int]; TensorRT documents None as "no more data".
            def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override]
                return None

            def read_calibration_cache(self) -> bytes:
                return cached

            def write_calibration_cache(self, cache: Any) -> None:
                return None

        calibrator = CacheCalibrator()
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        # nested: the static check accepts removed-in-11 names only inside the body of a hasattr guard
        if profile is not None and hasattr(config, "set_calibration_profile"):  # noqa: SIM102
            if not config.set_calibration_profile(profile):
                raise TensorRTBuildError("TensorRT refused the calibration profile of the dynamic batch; re-export "
                                         "the ONNX with a fixed batch for the legacy INT8 path")
        return calibrator
    raise LegacyInt8UnavailableError(f"TensorRT {trt.__version__} {_REMOVED_IN_11}")
