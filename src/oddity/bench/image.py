"""Image benchmark: every (dataset, detector) pair fitted and evaluated in a fresh process.

A fresh process per run makes peak RSS (the child's `ru_maxrss`) and timings belong to that
run alone. Results go to `image.json` (all numbers) and `image.md` (a table beside the
published figure of each method and the anomalib peer measured on this machine). Each run's
child also writes the light evaluation report (`oddity.report.write_report` without the
heat-map grid: ROC, PRO, AUPIMO and score plots and the worst errors, at most
`REPORT_ERRORS` of each kind on `REPORT_THUMBNAIL`-pixel cards, palette PNGs of
`REPORT_COLOURS` colours, so that the committed files stay small) into its own folder, linked
from `image.md`; peak RSS is read before the report, so it measures fit and evaluation only.
"""
from __future__ import annotations

import json
import os
import platform
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddity.bench.common import cell, run_in_child, write_files
from oddity.image.data import is_mvtec_category

MASK_THRESHOLD = 0.5
"""Benchmarks binarise grey (anti-aliased) ground-truth masks, such as magnetic tile's, at half
their brightest value; binary masks read the same with it."""


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
    ("bottle", "gaussian_ad"): [
        Reference("paper, EfficientNet-B4, NPCA 1%, augmented (Rippel et al. 2020, Table V, as "
                  "transcribed in jpcbertoldo/anomasota); MVTec AD mean 0.958", 1.000),
        Reference("paper, EfficientNet-B4, no NPCA, augmented (same table); MVTec AD mean 0.952", 0.998),
    ],
    ("bottle", "musc"): [
        Reference("paper, CLIP ViT-L/14-336, zero-shot (Li et al. 2024): MVTec AD MEAN "
                  "over 15 categories, no per-class bottle figure used", 0.978, 0.973, 0.938),
    ],
    ("bottle", "simplenet"): [
        Reference("paper, WRN-50 (Liu et al. 2023): MVTec AD MEAN image AUROC, no per-class bottle "
                  "figure found offline; epoch chosen on test AUROC (anomalib discussion #1607)", 0.996),
    ],
    ("bottle", "draem"): [
        Reference("paper, 256 px, 700 epochs, DTD textures (Zavrtanik et al. 2021, Tables 1-2; bottle "
                  "figures from memory of the paper, not re-checked offline); MVTec AD mean 0.980 image / "
                  "0.973 pixel", 0.992, 0.991),
    ],
    ("bottle", "efficientad"): [
        Reference("paper, EfficientAD-S, WRN-101-distilled PDN, 70k steps (Batzner et al. 2024): "
                  "MVTec AD MEAN image AUROC, not bottle alone", 0.988),
    ],
}


# The light report of a benchmark run: no heat-map grid; cards of the 12 worst false negatives
# and 12 worst false positives at 128 px; every PNG a 128-colour palette. On MVTec bottle a card
# is about 15 KB and a plot 8 KB: at most about 0.4 MB per run.
REPORT_ERRORS = 12
REPORT_THUMBNAIL = 128
REPORT_COLOURS = 128
REPORT_PLOTS = ("roc", "pro", "aupimo", "scores")  # shown inline in image.md when present


@dataclass
class Run:
    """One benchmark cell: what was run and what it measured; `report` is the path of the
    run's report page (index.html) when one was written."""

    dataset: str
    detector: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float | None = None
    peak_rss_gb: float | None = None
    error: str | None = None
    report: str | None = None
    report_seconds: float | None = None
    command: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """(dataset folder name, detector, parameters as sorted JSON): what identifies a run."""
        return Path(self.dataset).name, self.detector, json.dumps(self.params, sort_keys=True)


def find_datasets(data_root: str | os.PathLike) -> list[Path]:
    """Find every MVTec-layout category below `data_root` (a category has train/good and test/).

    Parameters
    ----------
    data_root : str or path-like
        Folder searched recursively.

    Returns
    -------
    list of Path
        The category folders, sorted.
    """
    root = Path(data_root)
    return sorted({p.parent.parent for p in root.rglob("train/good") if is_mvtec_category(p.parent.parent)})


def report_folder_name(dataset: str | os.PathLike, detector: str, params: dict[str, Any]) -> str:
    """Name a run's report folder: `<dataset>-<detector>`, then its settings if any.

    Characters other than letters, digits and `._=-` become `_`.

    Parameters
    ----------
    dataset : str or path-like
        The dataset folder (its name is used).
    detector : str
        Detector name.
    params : dict
        Settings that differ from the defaults, in the name sorted by key.

    Returns
    -------
    str
        The folder name.

    Examples
    --------
    >>> report_folder_name("data/mvtec/bottle", "patchcore", {"coreset_ratio": 0.01})
    'bottle-patchcore-coreset_ratio=0.01'
    """
    parts = [Path(dataset).name, detector, *(f"{k}={v}" for k, v in sorted(params.items()))]
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "-".join(parts))


def worker(dataset: str, detector: str, params: dict[str, Any],
            report_dir: str | None = None) -> dict[str, Any]:
    """Fit, evaluate and measure one run; called in the child process (see `run_one`).

    The light report is written into `report_dir` (when given) after the peak RSS is read, and
    timed on its own.

    Parameters
    ----------
    dataset : str
        MVTec-layout category folder.
    detector : str
        Registered image detector name.
    params : dict
        Detector parameters.
    report_dir : str, optional
        Folder of the run's light report.

    Returns
    -------
    dict
        `metrics`, `fit_seconds`, `peak_rss_gb` and, with a report, `report` (its page) and
        `report_seconds`.
    """
    import oddity
    from oddity.image.evaluate import evaluate

    model = oddity.create(detector, **params)
    start = time.perf_counter()
    if not model.zero_shot:  # a zero-shot detector scores the test split alone, train/ unread
        model.fit(dataset, verbose=False)
    fit_seconds = time.perf_counter() - start
    evaluation = evaluate(model, dataset, mask_threshold=MASK_THRESHOLD, verbose=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    result = {"metrics": evaluation.metrics, "fit_seconds": fit_seconds, "peak_rss_gb": peak}
    if report_dir is not None:
        from oddity.report import write_report

        start = time.perf_counter()
        config = {"dataset": dataset, "detector": detector, **model.get_params(),
                  "image threshold": model.threshold_.to_dict() if model.threshold_ else None,
                  "fit seconds": round(fit_seconds, 1)}
        page = write_report(report_dir, evaluation, config,
                            title=f"oddity benchmark: {detector} on {Path(dataset).name}",
                            max_images=0, max_errors=REPORT_ERRORS, thumbnail_side=REPORT_THUMBNAIL,
                            png_colours=REPORT_COLOURS)
        result.update(report=str(page), report_seconds=time.perf_counter() - start)
    return result


def run_one(dataset: Path, detector: str, params: dict[str, Any], timeout: float,
            report_dir: str | os.PathLike | None = None) -> Run:
    """Fit and evaluate in a fresh Python process; failures are recorded, not raised.

    Parameters
    ----------
    dataset : Path
        MVTec-layout category folder.
    detector : str
        Registered image detector name.
    params : dict
        Detector parameters.
    timeout : float
        Seconds before the child is stopped and the run recorded as failed.
    report_dir : str or path-like, optional
        Folder of the run's light report.

    Returns
    -------
    Run
        The run, with its measurements or its `error`.
    """
    run = Run(dataset=str(dataset), detector=detector, params=params)
    arguments = [str(dataset), detector, params, None if report_dir is None else str(report_dir)]
    result, run.error = run_in_child("oddity.bench.image:worker", arguments, timeout)
    if result is None:
        return run
    run.metrics, run.fit_seconds, run.peak_rss_gb = result["metrics"], result["fit_seconds"], result["peak_rss_gb"]
    run.report, run.report_seconds = result.get("report"), result.get("report_seconds")
    return run


def _relative(path: str | None, base: Path | None) -> str | None:
    """`path` relative to `base` with forward slashes (links in markdown and JSON that hold
    on any machine); unchanged when there is no base."""
    if path is None or base is None:
        return path
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def fpr_cell(metrics: dict[str, Any]) -> str:
    """Format the image threshold's false-positive rates as "target / expected / realised".

    The rates are those on the normal test images; "(over 2x)" is added when the realised rate
    exceeds twice the larger of the target and the expected rate, and "–" is returned for
    runs measured before the rates were recorded.

    Parameters
    ----------
    metrics : dict
        A run's metrics (`target_fpr`, `expected_fpr`, `realised_fpr`).

    Returns
    -------
    str
        The table cell.

    Examples
    --------
    >>> fpr_cell({"target_fpr": 0.01, "expected_fpr": 0.02, "realised_fpr": 0.05})
    '0.01 / 0.02 / 0.05 (over 2x)'
    """
    if metrics.get("realised_fpr") is None:
        return "–"
    target, expected, realised = metrics["target_fpr"], metrics["expected_fpr"], metrics["realised_fpr"]
    flag = " (over 2x)" if realised > 2 * max(target, expected) else ""
    return f"{target:.3g} / {expected:.3g} / {realised:.3g}{flag}"


def markdown_table(runs: list[Run], command: str, base: Path | None = None) -> str:
    """Render the results as markdown: our rows, each followed by its reference rows, then plots.

    The plots section shows each run that has a report.

    Parameters
    ----------
    runs : list of Run
        The runs, in table order.
    command : str
        The command that reproduces runs that do not record their own.
    base : Path, optional
        The folder of the markdown file; links are made relative to it (and plots shown only
        when their files exist there).

    Returns
    -------
    str
        The markdown document.
    """
    commands = list(dict.fromkeys(run.command or command for run in runs)) or [command]
    lines = [
        "# Image benchmark",
        "",
        f"Reproduce: {' then '.join(f'`{c}`' for c in commands)} (machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
        "MVTec bottle here is the 512 px copy in ../shared/data, published figures are at full size).",
        "",
        ("FPR: the image threshold's target / expected (from its calibration) / realised false-positive "
         "rate on the normal test images. Fit s, predict img/s and s/img: wall-clock figures of "
         "each run, indicative, not a timing run."),
        "",
        "| dataset | detector | settings | image AUROC | image AUPR | image F1-max | pixel AUROC | AUPRO | AUPIMO | FPR | fit s | predict img/s | predict s/img | peak RSS GB | report |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        name = Path(run.dataset).name
        settings = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "defaults"
        if run.error:
            lines.append(f"| {name} | {run.detector} | {settings} | failed: {run.error} ||||||||||||")
            continue
        m = run.metrics
        rate = m.get("images_per_second")
        report = _relative(run.report, base)
        link = f"[plots]({report})" if report else "–"
        lines.append(
            f"| {name} | **{run.detector}** | {settings} | {cell(m.get('image_auroc'))} | "
            f"{cell(m.get('image_aupr'))} | {cell(m.get('image_f1max'))} | {cell(m.get('pixel_auroc'))} | "
            f"{cell(m.get('aupro'))} | {cell(m.get('aupimo'))} | {fpr_cell(m)} | {cell(run.fit_seconds, 1)} | "
            f"{cell(rate, 1)} | {cell(1 / rate if rate else None, 2)} | {cell(run.peak_rss_gb, 2)} | {link} |")
        for ref in REFERENCES.get((name, run.detector), []):
            lines.append(f"| {name} | {run.detector}: {ref.source} | | {cell(ref.image_auroc)} | | | "
                         f"{cell(ref.pixel_auroc)} | {cell(ref.aupro)} | | | | {cell(ref.images_per_second, 1)} | | | |")
    reported = [run for run in runs if run.report and not run.error]
    if reported:
        lines += ["", "## Plots", "",
                  "Per run: image-level ROC, PRO curve (FPR <= 0.3), AUPIMO per anomalous image and "
                  "image scores with the calibrated threshold; the linked report adds the metric "
                  "table and the worst false negatives and false positives with heat maps.", ""]
    for run in reported:
        report = _relative(run.report, base)
        folder = Path(report).parent
        settings = ", ".join(f"{k}={v}" for k, v in run.params.items())
        lines += [f"### {Path(run.dataset).name} / {run.detector}{f' ({settings})' if settings else ''}",
                  "", f"[report]({report})", ""]
        shown = [name for name in REPORT_PLOTS
                 if base is None or (base / folder / "images" / f"{name}.png").is_file()]
        lines += [" ".join(f"![{name}]({(folder / 'images' / f'{name}.png').as_posix()})" for name in shown), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def read_results(out_dir: str | os.PathLike) -> list[Run]:
    """Read the runs recorded in `out_dir`/image.json (none if there is no such file).

    Parameters
    ----------
    out_dir : str or path-like
        The results folder.

    Returns
    -------
    list of Run
        The runs, report paths resolved against `out_dir`.
    """
    out = Path(out_dir)
    if not (out / "image.json").is_file():
        return []
    records = json.loads((out / "image.json").read_text())["runs"]
    return [Run(**{**r, "report": str(out / r["report"]) if r.get("report") else None}) for r in records]


def write_results(runs: list[Run], out_dir: str | os.PathLike, command: str) -> None:
    """Write image.json and image.md into `out_dir` atomically (report paths relative to it).

    Parameters
    ----------
    runs : list of Run
        The runs to record.
    out_dir : str or path-like
        The results folder.
    command : str
        The command that reproduces the runs.
    """
    out = Path(out_dir)
    records = [{**run.__dict__, "report": _relative(run.report, out)} for run in runs]
    document = {"command": command, "cpu_count": os.cpu_count(), "runs": records}
    write_files(out, {"image.json": json.dumps(document, indent=2, default=float),
                      "image.md": markdown_table(runs, command, out)})
