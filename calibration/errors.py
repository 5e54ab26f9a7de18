"""The base exception of :mod:`fornet.calibration` (data sets, labels, preprocessing, metrics, calibration)."""

from fornet.errors import FornetError


class DataError(FornetError):
    """Images, labels or statistics that cannot be used as given; the message names the fix."""
