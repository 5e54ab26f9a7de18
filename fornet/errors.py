"""The exception every fornet-deploy failure that a user can fix derives from.

Command-line tools catch :class:`FornetError` and print its message (which names the
problem and the fix) instead of a traceback.
"""


class FornetError(Exception):
    """A problem with the user's input or environment, described with its fix."""
