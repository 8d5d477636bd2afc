"""Loghub-style format strings: `<Date> <Time> <Level> <Component>: <Content>` to a regex.

Each `<Name>` becomes a named group; the text between them is a regular expression in which
runs of spaces match any white space (the convention of loghub and logparser, so their
published format strings work unchanged: `\\[<Time>\\]` matches a bracketed time). Every
format needs a `<Content>` field: the message that is mined for templates.
"""
from __future__ import annotations

import re

from oddity.core.errors import ConfigError


class LineFormat:
    """A compiled format string; `split(line)` gives the fields or None when it does not fit.

    Parameters
    ----------
    format : str
        The format string, e.g. ``'<Date> <Time> <Level> <Component>: <Content>'``.

    Raises
    ------
    ConfigError
        If the format has no `<Content>` field, repeats a field or is not a valid regex.
    """

    def __init__(self, format: str):
        self.format = format
        parts = re.split(r"(<[^<>]+>)", format)
        pattern, names, strip = "", [], []
        for k, part in enumerate(parts):
            if k % 2 == 0:
                pattern += re.sub(r" +", r"\\s+", part)
            else:
                name = part[1:-1].strip()
                if not re.fullmatch(r"[A-Za-z_]\w*", name):
                    raise ConfigError(f"--format {format!r}: field {part} must be a name "
                                      "(letters, digits, underscore)")
                if name in names:
                    raise ConfigError(f"--format {format!r}: field <{name}> appears twice")
                names.append(name)
                # the last field, at the end of the line, takes the rest: the same as `.*?$`
                # there (the line has no newline), without trying every shorter length first
                last = k == len(parts) - 2 and parts[-1] == ""
                pattern += f"(?P<{name}>{'.*' if last else '.*?'})"
                # a field between white space (or the ends of the line) never starts or ends
                # with white space: the separators take it all; others are stripped
                before = parts[k - 1].endswith(" ") or (k == 1 and parts[0] == "")
                after = parts[k + 1].startswith(" ") or last
                if not (before and after):
                    strip.append(name)
        if "Content" not in names:
            raise ConfigError(f"--format {format!r}: needs a <Content> field (the message), "
                              "e.g. '<Date> <Time> <Level> <Component>: <Content>'")
        try:
            self.regex = re.compile("^" + pattern + "$")
        except re.error as exc:
            raise ConfigError(f"--format {format!r}: not a valid pattern ({exc})") from None
        self.fields = names
        self.strip = tuple(strip)

    def split(self, line: str) -> dict[str, str] | None:
        """The fields of `line` (stripped), or None when the line does not fit the format.

        Parameters
        ----------
        line : str
            A log line.

        Returns
        -------
        dict or None
            Field name to text, or None.
        """
        match = self.regex.match(line.strip())
        if match is None:
            return None
        fields = match.groupdict("")
        for name in self.strip:
            fields[name] = fields[name].strip()
        return fields
