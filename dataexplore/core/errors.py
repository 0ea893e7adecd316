"""Exceptions raised by dataexplore.

Every error a user can cause with bad input derives from :class:`DataexploreError`,
so the command line can print it as one line, and notebooks can catch it in one place.
"""

from __future__ import annotations


class DataexploreError(Exception):
    """Base class for errors caused by the user's input or environment."""


class SourceError(DataexploreError, ValueError):
    """A source cannot become a samples table (bad path, duplicate ids, mismatched lengths)."""


class ModelError(DataexploreError, ValueError):
    """A model name or weights file cannot be resolved or loaded."""


class MissingDependencyError(DataexploreError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


def require(module: str, feature: str, install: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    Parameters
    ----------
    module : str
        Dotted module name to import.
    feature : str
        What the user asked for, used in the message.
    install : str
        The pip requirement that provides ``module``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - message path tested via a fake module
        raise MissingDependencyError(
            f"{feature} needs the '{module}' package: pip install {install}"
        ) from exc
