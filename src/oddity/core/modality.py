"""Modalities plug in the way detectors do: found by discovery, never listed.

A modality is a sub-package `oddity.<name>` with a `detectors` sub-package (one file per
method, each registered with `@register`) and a `cli` module holding its command-line verbs.
`oddity.cli` and the detector registry find modalities here, so adding one (logs, video) needs
no edit outside its own package.

The `cli` module of a modality provides (all optional except the three verbs it supports):
- `fit(detector_name, args, params)`: fit a detector of this modality (`args` the parsed
  command line, `params` the constructor parameters from the shared options) and save it;
- `predict(model, args)`: score `args.inputs` with a loaded model, write into `args.out`;
- `evaluate(model, args)`: measure a loaded model on labelled data `args.data`;
- `add_arguments(verb, parser)`: add this modality's options to the shared verbs
  ("fit", "predict", "eval");
- `add_commands(commands, parents)`: add verbs of its own to the sub-parsers `commands`
  (`parents`: the parent parsers every writing verb takes, with --quiet and --overwrite); each
  such verb names its inputs and outputs with `oddity.core.outputs.claim` before any work.
It must import heavy libraries (torch, pandas, matplotlib) inside those functions only, so
that `oddity --help` answers at once. The helpers below are shared by every modality's verbs.
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from oddity.core.errors import ConfigError
from oddity.core.params import parse_param
from oddity.core.persistence import atomic_write
from oddity.core.registry import get_detector_class
from oddity.core.thresholds import Threshold

if TYPE_CHECKING:
    import argparse


def modality_names() -> list[str]:
    """Names of the modality packages (those with a `detectors` sub-package), sorted.

    Returns
    -------
    list of str
        The names.
    """
    import oddity

    names = []
    for module in pkgutil.iter_modules(oddity.__path__):
        if not module.ispkg:
            continue
        folder = os.path.join(module.module_finder.path, module.name)  # type: ignore[union-attr]
        # Listed, not imported: importing every package here would load torch and pandas.
        if any(sub.name == "detectors" and sub.ispkg for sub in pkgutil.iter_modules([folder])):
            names.append(module.name)
    return sorted(names)


def modality_cli(name: str) -> ModuleType:
    """The `cli` module of modality `name`; a ConfigError if it has none.

    Parameters
    ----------
    name : str
        A modality.

    Returns
    -------
    module
        Its cli module.

    Raises
    ------
    ConfigError
        If it has none.
    """
    try:
        return importlib.import_module(f"oddity.{name}.cli")
    except ModuleNotFoundError as exc:
        if exc.name != f"oddity.{name}.cli":
            raise
        raise ConfigError(f"the {name} modality has no command-line verbs (no oddity.{name}.cli)") from None


def verb(modality: str, name: str) -> Any:
    """Verb `name` of a modality's CLI, or a ConfigError saying the modality lacks it.

    Parameters
    ----------
    modality : str
        A modality.
    name : str
        A verb (fit, predict, ...).

    Returns
    -------
    callable
        The verb's function.

    Raises
    ------
    ConfigError
        If the modality lacks it.
    """
    function = getattr(modality_cli(modality), name, None)
    if function is None:
        raise ConfigError(f"`oddity {'eval' if name == 'evaluate' else name}` is not available for "
                          f"{modality} models")
    return function


# --- helpers shared by the modalities' verbs ---------------------------------------------
def parse_assignment(cls: type, text: str) -> tuple[str, Any]:
    """`key=value` from `--set`, the value read by the parameter's type hint
    (`oddity.core.params.parse_param`).

    Parameters
    ----------
    cls : type
        The detector class.
    text : str
        ``key=value``.

    Returns
    -------
    tuple
        (key, typed value).

    Raises
    ------
    ConfigError
        If the text is not ``key=value`` or the value does not fit.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set coreset_ratio=0.05")
    return key.strip(), parse_param(cls, key.strip(), raw)


def detector_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Constructor parameters from the options given (defaults left to the detector), checked
    against what the detector accepts.

    Parameters
    ----------
    name : str
        A registered detector.
    args : argparse.Namespace
        The parsed options.

    Returns
    -------
    dict
        Parameter name to value.

    Raises
    ------
    ConfigError
        If an option names no parameter of the detector or its value does not fit.
    """
    cls = get_detector_class(name)
    accepted = cls.param_names()
    params: dict[str, Any] = {}
    for option in ("image_size", "backbone", "seed", "tile", "target_fpr"):
        if getattr(args, option, None) is not None:
            params[option] = getattr(args, option)
    if getattr(args, "skip_bad", False):
        params["skip_bad"] = True
    params.update(parse_assignment(cls, item) for item in args.set)
    if "backbone" in params and "backbone" not in accepted:
        raise ConfigError(f"--backbone: detector {name!r} takes no backbone")
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"detector {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters are: {', '.join(accepted)}")
    return params


def describe(threshold: Threshold | None) -> str:
    """One line on a threshold (`Threshold.describe`), or "none".

    Parameters
    ----------
    threshold : Threshold or None
        The threshold.

    Returns
    -------
    str
        The line.
    """
    return "none" if threshold is None else threshold.describe("images")


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write `document` as indented JSON, atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    document : dict
        JSON-serialisable data.
    """
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
