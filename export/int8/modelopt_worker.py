"""Run NVIDIA ModelOpt's ONNX INT8 quantizer in its own process.

Importing ``modelopt.onnx`` patches ONNX Runtime's ``quantize_static`` for the whole process
(``modelopt/onnx/quantization/ort_patching.py``), which breaks the ONNX Runtime file's own
quantization, and it logs to stdout. :mod:`fornet.export.int8.tensorrt_qdq` therefore runs it
here, in a child process, with a :class:`ModelOptJob` file naming the work:

    python -m fornet.export.int8.modelopt_worker JOB.json
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fornet.contract import INPUT_NAME
from fornet.errors import RecordError
from fornet.export.errors import ExportError
from fornet.records import Record


class ModelOptJobError(RecordError, ExportError):
    """The worker's job file is missing or damaged."""


@dataclass(frozen=True)
class ModelOptJob(Record):
    """What the worker quantizes: the graph, its scales (a TensorRT cache), calibration inputs, the output
    path and the nodes left in float."""

    FORMAT: ClassVar[str] = "fornet-deploy/modelopt-job"
    VERSION: ClassVar[int] = 1
    DESCRIPTION: ClassVar[str] = "fornet-deploy ModelOpt job file"
    FIX: ClassVar[str] = "run the INT8 export again (fornet export writes this file for its worker)"
    ERROR: ClassVar[type[RecordError]] = ModelOptJobError

    source: str
    scales_cache: str
    #: A ``.npy`` file of network inputs.
    calibration: str
    out: str
    nodes_to_exclude: tuple[str, ...]


def main(argv: list[str] | None = None) -> int:
    """Quantize the job's graph with the scales of its cache; exit 0 when the output was written."""
    (job_path,) = argv if argv is not None else sys.argv[1:]
    job = ModelOptJob.load(job_path)
    from modelopt.onnx.quantization import quantize

    quantize(job.source, quantize_mode="int8", calibration_data={INPUT_NAME: np.load(job.calibration)},
             calibration_method="max", calibration_cache_path=job.scales_cache, calibration_eps=["cpu"],
             high_precision_dtype="fp32", nodes_to_exclude=list(job.nodes_to_exclude), output_path=job.out,
             log_level="WARNING")
    return 0 if Path(job.out).is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
