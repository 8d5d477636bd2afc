"""The test tree itself: pytest collects test modules by basename (the folders are not
packages), so two modules with the same name in different folders stop the whole run."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique():
    names = Counter(path.name for path in Path(__file__).parent.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
