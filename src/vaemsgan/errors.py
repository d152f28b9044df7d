"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class VaemsganError(Exception):
    """A problem with the user's input, options or files (not a bug): shown without a traceback."""

    exit_code = 2


class DataError(VaemsganError):
    """Bad or missing data: a path, an image, a class folder."""


class ConfigError(VaemsganError):
    """A bad option or config value."""


class CheckpointError(VaemsganError):
    """A checkpoint that cannot be used: missing, corrupt, foreign or from another config."""


class OutputExistsError(VaemsganError):
    """An output would overwrite the user's files; `--force` allows it."""
