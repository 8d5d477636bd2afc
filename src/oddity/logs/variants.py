"""Which templates are variants of one event: the same words once the variable parts are gone.

Drain only compares messages with the same number of tokens, so an event whose variable part
varies in length becomes several templates: `<NUM> bytes sent` and `<NUM> bytes (<NUM> KB) sent`,
`lifetime <TIME>` and `lifetime <<NUM> sec`, `from <ADDR> ()` and `from <ADDR> (<ADDR>)`. The
skeleton of a template keeps only its constant words, in order; templates with the same
(non-empty) skeleton are one event. A token is dropped from the skeleton when

- it holds a value (a mask placeholder such as `<NUM>`, or Drain's wildcard `<*>`) and nothing
  but punctuation besides (`(<NUM>`, `<ADDR>,`), or is punctuation alone (`()`, `-`);
- it is a unit of measure right after a dropped value (`KB)` after `(<NUM>`, `sec` after
  `<<NUM>`): a number and its unit are one value.

A token that joins a value to a word (`node<NUM>`, `user=<NUM>` when `=` is not a delimiter)
keeps its word part, so `node<NUM>` and `host<NUM>` stay apart.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# Units of size and time written after a number (compared in lower case, punctuation stripped).
UNITS = frozenset(
    "b kb mb gb tb pb kib mib gib tib byte bytes bit bits kbps mbps gbps "
    "ns us µs ms s sec secs second seconds m min mins minute minutes h hr hrs hour hours "
    "d day days % percent".split())
_PUNCTUATION = re.compile(r"[^\w]*")


def placeholder_pattern(names: Iterable[str]) -> re.Pattern:
    """A pattern finding the placeholders `<NAME>` of `names` and Drain's wildcard `<*>`.

    Parameters
    ----------
    names : iterable of str
        Mask names (`oddity.logs.masking` rules).

    Returns
    -------
    re.Pattern
        The compiled pattern.
    """
    alternatives = sorted({re.escape(name) for name in names} | {r"\*"})
    return re.compile("<(?:" + "|".join(alternatives) + ")>")


def skeleton(tokens: Iterable[str], placeholders: re.Pattern) -> tuple[str, ...]:
    """The constant words of a template, in order (see the module docstring).

    Parameters
    ----------
    tokens : iterable of str
        The template's tokens.
    placeholders : re.Pattern
        Finds value placeholders (`placeholder_pattern`).

    Returns
    -------
    tuple of str
        The skeleton; empty when the template holds no constant word.
    """
    words: list[str] = []
    after_value = False
    for token in tokens:
        word = placeholders.sub("", token)
        if _PUNCTUATION.fullmatch(word):
            after_value = word != token
            continue
        if after_value and word.strip("()[]{}<>,;:.'\"").lower() in UNITS:
            after_value = False
            continue
        words.append(word)
        after_value = False
    return tuple(words)
