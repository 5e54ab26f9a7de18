"""Run NVIDIA ModelOpt's ONNX INT8 quantizer in its own process.

Importing ``modelopt.onnx`` patches ONNX Runtime's ``quantize_static`` for the whole process
(``modelopt/onnx/quantization/ort_patching.py``), which breaks the ONNX Runtime file's own
quantization, and it logs to stdout. :mod:`fornet.export.int8.tensorrt_qdq` therefore runs it
here, in a child process:

    python -m fornet.export.int8.modelopt_worker SOURCE.onnx SCALES.cache CALIBRATION.npy OUT.onnx EXCLUDE.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fornet.contract import INPUT_NAME


def main(argv: list[str] | None = None) -> int:
    """Quantize SOURCE with the scales of SCALES (a TensorRT cache); exit 0 when OUT was written."""
    source, cache, calibration, out, exclude = (argv if argv is not None else sys.argv[1:])
    from modelopt.onnx.quantization import quantize

    quantize(source, quantize_mode="int8", calibration_data={INPUT_NAME: np.load(calibration)},
             calibration_method="max", calibration_cache_path=cache, calibration_eps=["cpu"],
             high_precision_dtype="fp32", nodes_to_exclude=json.loads(Path(exclude).read_text(encoding="utf-8")),
             output_path=out, log_level="WARNING")
    return 0 if Path(out).is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
