"""Masking of variable tokens before template mining: one general configuration for any log.

Each rule replaces what its regular expression matches by a named placeholder (`<IP>`,
`<NUM>`, ...) before Drain sees the line, so that values that vary (addresses, ids, sizes,
paths) never split one event into many templates. All rules run in one pass; where several
match at the same place, the first rule wins, so the most specific come first: a block id is
masked before its digits could be taken for a number. Rules apply to each white-space
separated token (a rule never spans a space), and a token's masked form is cached (a dict
lookup per token; only tokens not seen before run the rules), which is what makes masking
fast on logs, whose tokens repeat. Rules must not use named groups. Placeholders stay named in
the templates (`<NUM>` rather than `<*>`) so a reader sees what varied; Drain's own wildcard
`<*>` marks tokens that differed between lines of one template. Hexadecimal and decimal
values are both `<NUM>` (`00106570` and `0010d3d0` are the same kind of value), and a
comma-separated list of one kind of value (`<ADDR>,<ADDR>`) is one value of that kind, since
lists vary in length.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from oddity.core.errors import ConfigError

# (name, pattern). Boundaries use look-arounds so that a token glued to punctuation
# ("size=512," or "(10.0.0.1)") is still found and the punctuation kept. Possessive `++` / `*+`
# where giving characters back can never help (the next character must be one the run
# excludes) spare the backtracking; "a hexadecimal run holding a digit" is written "letters,
# then a digit" (and the other way round).
_B = r"(?<![\w.\-])"      # not preceded by a word character, dot or dash
_E = r"(?![\w\-]|\.\w)"  # not followed by a word character, dash, or dot and word
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    ("URL", r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+"),
    ("BLK", r"\bblk_-?\d+\b"),
    ("UUID", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ("ADDR", _B + r"(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?" + _E),
    ("MAC", r"\b(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\b"),
    ("TIME", _B + r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?" + _E),
    ("DATE", _B + r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _E),
    ("PATH", r"(?<![\w/.])(?:[A-Za-z]:)?(?:[/\\][\w.\-@$~+]++){2,}[/\\]?(?:\?[^\s\"'<>]*)?"),
    ("ADDR", _B + r"(?:\w[\w\-]*+\.)+[a-z][a-z0-9_\-]*(?::\d{1,5})?" + _E),
    ("NUM", _B + r"(?:0[xX][0-9a-fA-F]+|(?=[a-fA-F]*+\d)(?=\d*+[a-fA-F])[0-9a-fA-F]{6,})" + _E),
    ("ID", r"(?<![\w\-.])(?=[\w\-]*\d)(?=[\w\-]*[A-Za-z])[\w\-]*[A-Za-z0-9]" + _E),
    ("NUM", r"(?<![A-Za-z0-9])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?" + _E),
)


_LIST = re.compile(r"(<[A-Za-z_]\w*>)(?:,\1)+")  # a comma-separated list of one kind of value
CACHE_SIZE = 200_000  # tokens whose masked form is remembered (the cache is emptied when full)


class _TokenCache(dict):
    """Token -> masked token; a missing token is masked and remembered (emptied when full)."""

    def __init__(self, mask_token: Callable[[str], str]):
        super().__init__()
        self.mask_token = mask_token

    def __missing__(self, token: str) -> str:
        if len(self) >= CACHE_SIZE:
            self.clear()
        masked = self[token] = self.mask_token(token)
        return masked


@dataclass(frozen=True)
class Masker:
    """Applies masking rules in order; `rules` are (name, regex) pairs (JSON-friendly)."""

    rules: tuple[tuple[str, str], ...] = DEFAULT_MASKS

    def __post_init__(self) -> None:
        alternatives, placeholders = [], {}
        for k, (name, pattern) in enumerate(self.rules):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"mask name {name!r}: use letters, digits and underscores")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"mask {name!r}: invalid regular expression {pattern!r} ({exc})") from None
            alternatives.append(f"(?P<m{k}>{pattern})")
            placeholders[f"m{k}"] = f"<{name}>"
        # One pass over the text: at each position the first rule that matches wins, which
        # is the order of the rules.
        regex = re.compile("|".join(alternatives)) if alternatives else None
        object.__setattr__(self, "_regex", regex)
        object.__setattr__(self, "_placeholders", placeholders)
        object.__setattr__(self, "_replace", lambda match: placeholders[match.lastgroup])
        object.__setattr__(self, "_cache", _TokenCache(self.mask_token))

    def mask(self, text: str) -> str:
        """`text` with every rule's matches replaced by its placeholder; tokens are rejoined
        with single spaces (Drain splits on white space anyway).

        Parameters
        ----------
        text : str
            A message.

        Returns
        -------
        str
            The masked message.
        """
        return " ".join(map(self._cache.__getitem__, text.split()))  # type: ignore[attr-defined]

    def values(self, text: str) -> list[tuple[str, str]]:
        """What the rules match in `text`, token by token: (rule name, matched text) pairs.

        Parameters
        ----------
        text : str
            A message.

        Returns
        -------
        list of tuple
            (name, value) in the order found; the first rule that matches at a place wins.
        """
        if self._regex is None:  # type: ignore[attr-defined]
            return []
        names = self._placeholders  # type: ignore[attr-defined]
        return [(names[m.lastgroup][1:-1], m.group(0)) for token in text.split()
                for m in self._regex.finditer(token)]  # type: ignore[attr-defined]

    def mask_token(self, token: str) -> str:
        """One white-space-free token with the rules applied.

        Parameters
        ----------
        token : str
            One token.

        Returns
        -------
        str
            The masked token.
        """
        regex = self._regex  # type: ignore[attr-defined]
        match = None if regex is None else regex.search(token)
        if match is None:
            return token
        end = match.end()
        if end == len(token) and regex.search(token, end) is None:
            # one value ending the token (the usual case): what `sub` gives, without its callback
            masked = token[:match.start()] + self._placeholders[match.lastgroup]  # type: ignore[attr-defined]
        else:
            masked = regex.sub(self._replace, token)  # type: ignore[attr-defined]
        return _LIST.sub(r"\1", masked) if "," in masked else masked
