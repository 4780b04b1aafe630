"""Errors of the experiment layer: bad configuration and missing data.

All of them are raised before any training starts where that is possible, and
their message is a single line naming the config key, the allowed values and
what was given. The CLI prints exactly that line.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

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


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for the subcommands, whose mistakes are one line and exit 2, like every other alsweep error.

    argparse's own ``error`` prints the whole usage block first; the line here names the
    subcommand, argparse's reason and where the usage is.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"alsweep: error: {self.prog}: {message}; see '{self.prog} --help'\n")
