"""Error hierarchy: every error oddity raises on purpose is an `OddityError`.

Messages name the file or argument at fault and say how to fix it, so a user never has to
read a traceback from deep inside numpy or torch to learn what went wrong.
"""
from __future__ import annotations


class OddityError(Exception):
    """Base class of all errors raised deliberately by oddity."""


class ConfigError(OddityError, ValueError):
    """A constructor argument, CLI option or setting is invalid."""


class DataError(OddityError, ValueError):
    """Input data is missing, unreadable, malformed or inconsistent (names the file)."""


class NotFittedError(OddityError, RuntimeError):
    """A detector was asked to score before `fit` (or `load`) gave it a model of normal."""


class ModelFileError(OddityError, ValueError):
    """A saved model is missing, corrupt, from an unknown detector or an incompatible version."""


class MetricError(OddityError, ValueError):
    """A metric cannot be computed from the given labels/scores (e.g. only one class)."""


class OutputError(OddityError, ValueError):
    """An output path is refused: it is an input, exists (without `--overwrite`), is
    read-only, or cannot be written (names the path and the fix)."""


class ExportError(OddityError, ValueError):
    """A model cannot be exported, or its export failed the parity gate (says why)."""
