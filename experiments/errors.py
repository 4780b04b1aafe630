"""Errors of the experiment layer: bad configuration and missing data.

All of them are raised before any training starts where that is possible, and
their message is a single line naming the config key, the allowed values and
what was given. The CLI prints exactly that line.
"""

from __future__ import annotations

from strategies.errors import StrategyInputError, UnknownNameError


class ConfigError(ValueError):
    """A config value is out of range, inconsistent with another, or unsupported."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing and could not be downloaded."""


class TrackingError(RuntimeError):
    """The MLflow store named by ``tracking.uri`` cannot be reached or used."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is corrupt, truncated or not in the expected format."""


#: What the CLI reports as a one-line error instead of a traceback.
USER_ERRORS = (
    ConfigError, DatasetNotFoundError, DatasetFormatError, StrategyInputError, TrackingError, UnknownNameError
)
