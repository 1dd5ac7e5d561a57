"""Errors a user can meet. The CLI prints them as one line and exits with code 2.

Each message names the flag, file or row at fault and says what to do about it.
"""


class VisionfitError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(VisionfitError):
    """A flag or option has a value we cannot work with."""


class DataError(VisionfitError):
    """A dataset path, file, row or image is missing or unreadable."""


class ModelError(VisionfitError):
    """A model name, model file or weight file cannot be used."""


class OutputError(VisionfitError):
    """A file or folder cannot be written (full disk, read-only, no permission, in use by another run)."""
