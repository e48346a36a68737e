"""User-facing errors.

Anything raised as a :class:`GraphdiffError` is a problem with the user's input (a file, a setting, a
checkpoint) rather than a bug; the command line prints its message on one line and exits with status 2.
"""


class GraphdiffError(Exception):
    """Bad input: the message says what is wrong and where."""


class DataError(GraphdiffError):
    """A dataset file is missing, empty, truncated or holds something graphdiff cannot read."""


class ConfigError(GraphdiffError):
    """A setting is unknown or has an invalid value."""
