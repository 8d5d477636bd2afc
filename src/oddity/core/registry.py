"""Detector registry: maps a stable name (`patchcore`, `padim`, ...) to its class.

A method registers itself with `@register("name")` in its own file; the CLI, benchmarks and
`oddity.load` look classes up here. The detector packages (`oddity.<modality>.detectors`, found
by `oddity.core.modality`) are imported lazily on first lookup so that `import oddity` stays
fast and a new method, or a new modality, needs no edit outside its own files. A detector
package whose optional dependencies are not installed (`pip install oddity[image]` without
`[series]`) is left out, and asking for one of its detectors says what to install.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Callable, TypeVar

from oddity.core.errors import ConfigError

if TYPE_CHECKING:
    from oddity.core.detector import Detector

_REGISTRY: dict[str, type["Detector"]] = {}
_loaded = False

_MISSING: dict[str, str] = {}  # extra (the modality) -> a module its detectors need, not installed

D = TypeVar("D", bound=type)


def register(name: str) -> Callable[[D], D]:
    """Class decorator: register a Detector subclass under `name` and set ``cls.name``.

    Parameters
    ----------
    name : str
        The stable name users pass to `oddity.create` and the command line.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged apart from ``name``.

    Raises
    ------
    ConfigError
        If another class is already registered under `name`.
    """

    def decorate(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"detector name {name!r} is registered twice")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def _import_all() -> None:
    """Import every module of every detector package once, so that they register."""
    global _loaded
    if _loaded:
        return
    from oddity.core.modality import modality_names

    for package_name in (f"oddity.{name}.detectors" for name in modality_names()):
        extra = package_name.split(".")[1]  # oddity.<modality>.detectors needs oddity[<modality>]
        try:
            package = importlib.import_module(package_name)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{package_name}.{module.name}")
        except ModuleNotFoundError as exc:
            if not exc.name or exc.name.split(".")[0] == "oddity":
                raise
            _MISSING[extra] = exc.name
    _loaded = True


def list_detectors(modality: str | None = None) -> list[str]:
    """Names of all registered detectors, optionally only those of one modality.

    Parameters
    ----------
    modality : str, optional
        ``"image"`` or ``"series"``; None lists every detector.

    Returns
    -------
    list of str
        Sorted names.

    Examples
    --------
    >>> import oddity
    >>> "patchcore" in oddity.list_detectors("image"), "patchcore" in oddity.list_detectors("series")
    (True, False)
    """
    _import_all()
    return sorted(n for n, c in _REGISTRY.items() if modality is None or c.modality == modality)


def get_detector_class(name: str) -> type["Detector"]:
    """The class registered under `name`.

    Parameters
    ----------
    name : str
        A registered name.

    Returns
    -------
    type
        The Detector subclass.

    Raises
    ------
    ConfigError
        If nothing is registered under `name`; the message lists the valid names and any
        extra that must be installed for more.
    """
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        missing = "".join(f"; the {extra} detectors need {module!r}: pip install 'oddity[{extra}]'"
                          for extra, module in sorted(_MISSING.items()))
        raise ConfigError(
            f"unknown detector {name!r}; choose one of: {', '.join(list_detectors())}{missing}"
        ) from None
