"""Versions of the libraries a result depends on, read from package metadata (nothing is imported).

Benchmark records and run reports name them, so a number can be traced to the software that made it.
"""

from __future__ import annotations

import importlib.metadata
import sys

#: Distributions whose versions a record names (first installed name of each group).
PACKAGES = {
    "fornet-deploy": ("fornet-deploy",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "pycuda": ("pycuda",),
    "av": ("av",),
}


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None when absent), and Python's."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for label, names in PACKAGES.items():
        versions[label] = None
        for name in names:
            try:
                versions[label] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    trt = sys.modules.get("tensorrt")  # JetPack's apt bindings carry no distribution metadata
    if versions["tensorrt"] is None and trt is not None:
        versions["tensorrt"] = getattr(trt, "__version__", None)
    return versions
