"""The exception every fornet-deploy failure that a user can fix derives from.

Command-line tools catch :class:`FornetError` and print its message (which names the
problem and the fix) instead of a traceback. Each package has one base class of its own
(:class:`fornet.calibration.errors.DataError`, :class:`fornet.model.errors.ModelError`,
:class:`fornet.runtime.errors.FornetRuntimeError`, :class:`fornet.export.errors.ExportError`),
and the records every package writes share :class:`RecordError`.
"""


class FornetError(Exception):
    """A problem with the user's input or environment, described with its fix."""


class RecordError(FornetError):
    """A file this project writes and reads back (sidecar, plan metadata, manifest, report) is
    missing, corrupt, foreign or newer than this version understands."""
