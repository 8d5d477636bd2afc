"""Detector registry: maps a stable name (`patchcore`, `padim`, ...) to its class.

A method registers itself with `@register("name")` in its own file; the CLI, benchmarks and
`oddity.load` look classes up here. Detector packages are imported lazily on first lookup so
that `import oddity` stays fast and a new method needs no edit outside its own file.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Callable, TypeVar

from oddity.core.errors import ConfigError

if TYPE_CHECKING:
    from oddity.core.detector import Detector

_DETECTOR_PACKAGES = ("oddity.image.detectors", "oddity.series.detectors", "oddity.video.detectors")
_REGISTRY: dict[str, type["Detector"]] = {}
_loaded = False

D = TypeVar("D", bound=type)


def register(name: str) -> Callable[[D], D]:
    """Class decorator: register a Detector subclass under `name` and set `cls.name`."""

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
    for package_name in _DETECTOR_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")
    _loaded = True


def list_detectors(modality: str | None = None) -> list[str]:
    """Names of all registered detectors, optionally only those of one modality."""
    _import_all()
    return sorted(n for n, c in _REGISTRY.items() if modality is None or c.modality == modality)


def get_detector_class(name: str) -> type["Detector"]:
    """The class registered under `name`; a ConfigError lists the valid names otherwise."""
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown detector {name!r}; choose one of: {', '.join(list_detectors())}"
        ) from None
