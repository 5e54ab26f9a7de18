"""The base exception of :mod:`fornet.model` (architecture, checkpoints, loss, training, evaluation)."""

from fornet.errors import FornetError


class ModelError(FornetError):
    """A model, checkpoint or training request that cannot be carried out as given."""
