"""MkDocs hook: publish `benchmarks/results/` (tables, JSON, plots) inside the site at
`benchmarks/results/`, so that guide and method pages link to the measured figures and a
broken link fails the strict build."""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

RESULTS = Path("benchmarks") / "results"


def on_files(files: Files, config) -> Files:
    root = Path(config["config_file_path"]).parent
    for path in sorted((root / RESULTS).rglob("*")):
        if path.is_file():
            files.append(File(str(path.relative_to(root)), str(root), config["site_dir"],
                              config["use_directory_urls"]))
    return files
