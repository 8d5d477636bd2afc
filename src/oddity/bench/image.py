"""Image benchmark: every (dataset, detector) pair fitted and evaluated in a fresh process.

A fresh process per run makes peak RSS (the child's `ru_maxrss`) and timings belong to that
run alone. Results go to `image.json` (all numbers) and `image.md` (a table beside the
published figure of each method and the anomalib peer measured on this machine).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddity.core.persistence import atomic_write
from oddity.image.data import is_mvtec_category


@dataclass(frozen=True)
class Reference:
    """A figure from elsewhere to print beside ours: where it comes from and its numbers."""

    source: str
    image_auroc: float | None = None
    pixel_auroc: float | None = None
    aupro: float | None = None
    images_per_second: float | None = None


# Published per-category figures (MVTec AD, full resolution) and the peer on this machine.
REFERENCES: dict[tuple[str, str], list[Reference]] = {
    ("bottle", "patchcore"): [
        Reference("paper, WRN-50 (Roth et al. 2022)", 1.000, 0.986, None),
        Reference("anomalib 2.7.0, Lite0, 1% coreset, this machine (DESIGN.md)", 1.000, 0.983, 0.936, 15.7),
    ],
    ("bottle", "padim"): [
        Reference("paper, WRN-50 (Defard et al. 2020, Tables 2-3)", None, 0.983, 0.948),
        Reference("anomalib 2.7.0, Lite0, this machine (DESIGN.md)", 0.999, 0.980, 0.925, 9.4),
    ],
}


@dataclass
class Run:
    """One benchmark cell: what was run and what it measured."""

    dataset: str
    detector: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float | None = None
    peak_rss_gb: float | None = None
    error: str | None = None


def find_datasets(data_root: str | os.PathLike) -> list[Path]:
    """Every MVTec-layout category below `data_root` (a category has train/good and test/)."""
    root = Path(data_root)
    return sorted({p.parent.parent for p in root.rglob("train/good") if is_mvtec_category(p.parent.parent)})


def _worker(dataset: str, detector: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run in the child process: fit, evaluate, report metrics and this process's peak RSS."""
    import oddity
    from oddity.image.evaluate import evaluate

    model = oddity.create(detector, **params)
    start = time.perf_counter()
    model.fit(dataset, verbose=False)
    fit_seconds = time.perf_counter() - start
    evaluation = evaluate(model, dataset, verbose=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    return {"metrics": evaluation.metrics, "fit_seconds": fit_seconds, "peak_rss_gb": peak}


def run_one(dataset: Path, detector: str, params: dict[str, Any], timeout: float) -> Run:
    """Fit and evaluate in a fresh Python process; failures are recorded, not raised."""
    run = Run(dataset=str(dataset), detector=detector, params=params)
    code = ("import json, sys; from oddity.bench.image import _worker; "
            "print('@@' + json.dumps(_worker(*json.loads(sys.argv[1]))))")
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps([str(dataset), detector, params])],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        run.error = f"timed out after {timeout:.0f} s"
        return run
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        run.error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return run
    result = json.loads(lines[-1][2:])
    run.metrics, run.fit_seconds, run.peak_rss_gb = result["metrics"], result["fit_seconds"], result["peak_rss_gb"]
    return run


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(runs: list[Run], command: str) -> str:
    """The results as markdown, each of our rows followed by its reference rows."""
    lines = [
        "# Image benchmark",
        "",
        f"Reproduce: `{command}` (machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
        "MVTec bottle here is the 512 px copy in ../shared/data, published figures are at full size).",
        "",
        "| dataset | detector | settings | image AUROC | image AUPR | image F1-max | pixel AUROC | AUPRO | AUPIMO | fit s | predict img/s | peak RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        name = Path(run.dataset).name
        settings = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "defaults"
        if run.error:
            lines.append(f"| {name} | {run.detector} | {settings} | failed: {run.error} |||||||||")
            continue
        m = run.metrics
        lines.append(
            f"| {name} | **{run.detector}** | {settings} | {_cell(m.get('image_auroc'))} | "
            f"{_cell(m.get('image_aupr'))} | {_cell(m.get('image_f1max'))} | {_cell(m.get('pixel_auroc'))} | "
            f"{_cell(m.get('aupro'))} | {_cell(m.get('aupimo'))} | {_cell(run.fit_seconds, 1)} | "
            f"{_cell(m.get('images_per_second'), 1)} | {_cell(run.peak_rss_gb, 2)} |")
        for ref in REFERENCES.get((name, run.detector), []):
            lines.append(f"| {name} | {run.detector}: {ref.source} | | {_cell(ref.image_auroc)} | | | "
                         f"{_cell(ref.pixel_auroc)} | {_cell(ref.aupro)} | | | {_cell(ref.images_per_second, 1)} | |")
    return "\n".join(lines) + "\n"


def write_results(runs: list[Run], out_dir: str | os.PathLike, command: str) -> None:
    """Write image.json and image.md into `out_dir` atomically."""
    out = Path(out_dir)
    document = {"command": command, "cpu_count": os.cpu_count(), "runs": [run.__dict__ for run in runs]}
    text = json.dumps(document, indent=2, default=float)
    atomic_write(out / "image.json", lambda tmp: Path(tmp).write_text(text))
    table = markdown_table(runs, command)
    atomic_write(out / "image.md", lambda tmp: Path(tmp).write_text(table))
