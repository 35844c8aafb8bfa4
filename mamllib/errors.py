"""User-facing errors.

Everything a user can get wrong (a config field, a data folder, a checkpoint) raises a
subclass of :class:`UserError`. The CLI turns these into a one-line message and exit
status 2; library callers can catch them like any ``ValueError``.
"""


class UserError(ValueError):
    """Bad input from the user: the message names the field, the value and what is allowed."""


class ConfigError(UserError):
    """A run configuration field has a value that is not allowed."""


class DataError(UserError):
    """A dataset folder is missing, malformed, or too small for the requested tasks."""


class CheckpointError(UserError):
    """A run folder or checkpoint is unreadable, corrupt, or belongs to another config."""
