"""Shared by the EfficientAD diagnosis scripts: the load average and appending result rows."""
from __future__ import annotations

from pathlib import Path

from oddity.core.persistence import atomic_write


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, recorded beside every measurement (shared machine)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def append_rows(path: Path, preamble: str, rows: str) -> None:
    """Print `rows` and append them to the markdown table at `path` (started with `preamble`)."""
    print(rows, end="")
    text = path.read_text() if path.exists() else preamble
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + rows))
