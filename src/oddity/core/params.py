"""Typed detector parameters: read from text (`--set key=value`) and checked in the Python API.

Each constructor parameter's type comes from its type hint (over the class hierarchy, as
`Detector.param_names` gathers the names). Text is read by that type, never guessed:
`bool` takes true/false, yes/no, on/off, 1/0 (any case) and nothing else; `int` a whole
number; `float` a finite number; `str` the text as given (or a JSON string in double quotes); `X | None` also none/null; tuples
and lists a JSON list (or one bare item) whose items are read by the item type; `Literal` one
of its values. A parameter whose hint cannot be resolved is read as JSON, else as text.
A value that does not fit is a ConfigError naming the parameter, the value and the type.
"""
from __future__ import annotations

import json
import math
import numbers
import types
import typing
from typing import Any, Literal, Union

from oddity.core.errors import ConfigError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


def parameter_types(cls: type) -> dict[str, Any]:
    """Type hint of each constructor parameter of `cls` (first class in the MRO to name it).

    Parameters
    ----------
    cls : type
        A detector class.

    Returns
    -------
    dict
        Parameter name to type hint (unresolvable hints are left out).
    """
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        try:
            found = typing.get_type_hints(klass.__init__)
        except Exception:  # unresolvable forward reference: those parameters are read as JSON
            continue
        for name, hint in found.items():
            hints.setdefault(name, hint)
    hints.pop("return", None)
    return hints


def describe(hint: Any) -> str:
    """A type hint in words, for messages.

    Parameters
    ----------
    hint : Any
        A type hint.

    Returns
    -------
    str
        E.g. "a whole number" or "a list (each item text)".
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("None" if a is type(None) else describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list):
        return f"a list (each item {describe(args[0])})" if args else "a list"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


class _Mismatch(Exception):
    pass


def _from_text(raw: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    text = raw.strip()
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _from_text(raw, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for value in args:
            if text == str(value):
                return value
        raise _Mismatch
    if origin in (tuple, list):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            items = [text]
        if not isinstance(items, list):
            items = [items]
        item_hint = args[0] if args and args[0] is not Ellipsis else Any
        values = [_from_value(item, item_hint) for item in items]
        return tuple(values) if origin is tuple else values
    if hint is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _Mismatch
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise _Mismatch from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise _Mismatch from None
        if not math.isfinite(value):
            raise _Mismatch
        return value
    if hint is str:
        if len(text) >= 2 and text[0] == text[-1] == '"':  # a JSON string, as --set once took
            try:
                return str(json.loads(text))
            except json.JSONDecodeError:
                pass
        return raw
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return raw


def _from_value(value: Any, hint: Any) -> Any:
    """A JSON item (of a list) checked against `hint`."""
    if isinstance(value, str):
        return _from_text(value, hint)
    if conforms(value, hint):
        return value
    raise _Mismatch


def conforms(value: Any, hint: Any) -> bool:
    """Whether a Python value fits a hint (an int fits float; a bool fits only bool).

    Parameters
    ----------
    value : Any
        The value.
    hint : Any
        The type hint.

    Returns
    -------
    bool
        True when it fits.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, (str, typing.TypeVar)):
        return True
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        item = args[0] if args and args[0] is not Ellipsis else Any
        return all(conforms(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def parse_param(cls: type, name: str, raw: str) -> Any:
    """The value of parameter `name` of `cls` read from text by its type (module docstring).

    Parameters
    ----------
    cls : type
        A detector class.
    name : str
        The parameter.
    raw : str
        Its value as text (``--set name=raw``).

    Returns
    -------
    Any
        The typed value.

    Raises
    ------
    ConfigError
        If the text does not read as the parameter's type.
    """
    hint = parameter_types(cls).get(name, Any)
    try:
        return _from_text(raw, hint)
    except _Mismatch:
        raise ConfigError(f"--set {name}={raw}: {name} must be {describe(hint)}") from None


def _sequence_type(hint: Any) -> type | None:
    """tuple or list when `hint` (or the one type of an optional hint) is one, else None."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        types_ = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(types_[0]) if len(types_) == 1 else None
    return origin if origin in (tuple, list) else None


def check_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """`params` checked against their type hints (a ConfigError names the first that does not
    fit); a single string given for a tuple or list parameter becomes a one-item tuple/list,
    and a list for a tuple parameter (as JSON stores it) a tuple.

    Parameters
    ----------
    cls : type
        A detector class.
    params : dict
        Parameter name to value.

    Returns
    -------
    dict
        The parameters, sequences converted as said above.

    Raises
    ------
    ConfigError
        Naming the first parameter whose value does not fit its type.
    """
    hints = parameter_types(cls)
    checked = dict(params)
    for name, value in params.items():
        hint = hints.get(name, Any)
        sequence = _sequence_type(hint)
        if sequence is not None and isinstance(value, (str, list, tuple)):
            value = checked[name] = sequence([value] if isinstance(value, str) else value)
        if not conforms(value, hint):
            raise ConfigError(f"{name}={value!r}: {name} must be {describe(hint)}, got "
                              f"{type(value).__name__}")
    return checked
