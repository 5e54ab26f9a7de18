"""fornet-deploy: train, export and deploy FoR-Net semantic segmentation.

This top-level package is deliberately light: it holds the version and the shared
exception type. The real code lives in ``fornet.model``, ``fornet.export``,
``fornet.calibration`` and ``fornet.runtime``.
"""

from fornet.errors import FornetError

__version__ = "0.1.0"

__all__ = ["FornetError", "__version__"]
