"""The package version (also in pyproject.toml): the lowest layer, so that anything may read it."""

__version__ = "0.1.0"
