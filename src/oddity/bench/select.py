"""Model-choice benchmark: `oddity fit auto` on each dataset, beside every candidate's real score.

Per dataset, in a fresh process: `oddity.image.select.select_detector` runs on the training
images (a fixed random subset of at most `max_fit` of them when asked) and keeps its candidates
as fitted for validation; each candidate is then scored on the real test split (at most
`max_test` normal and as many defective images when asked), so the chosen candidate's test
image AUROC stands beside the best candidate's, fitted on the same images (like with like).
The chosen detector refitted on every training image is scored too (unless `refit` is
off: one fit less; the model-choice target compares only the candidates). Results go to
`select.json` and `select.md`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddity.bench.common import cell, run_in_child

TARGET_GAP = 0.02  # the chosen detector's test image AUROC may trail the best by at most this


@dataclass
class SelectRun:
    """One dataset: the validation table (`Selection.to_dict`), each candidate's test metrics
    (as fitted for validation), the refitted winner's test metrics and the seconds spent."""

    dataset: str
    max_fit: int | None = None
    max_test: int | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    test: list[dict[str, Any] | None] = field(default_factory=list)
    refit_test: dict[str, Any] | None = None
    select_seconds: float | None = None
    error: str | None = None
    command: str = ""

    @property
    def key(self) -> tuple[str, int | None, int | None]:
        """Dataset name and the training- and test-image caps."""
        return Path(self.dataset).name, self.max_fit, self.max_test


def candidate_metrics(model: Any, samples: list) -> dict[str, Any]:
    """Image and pixel AUROC of a fitted detector on labelled test samples, and the realised
    false-positive rate of its image threshold on the normal ones.

    Parameters
    ----------
    model : ImageDetector
        A fitted detector.
    samples : list of ImageSample
        Labelled test samples (`oddity.image.data.evaluation_samples`).

    Returns
    -------
    dict
        ``image_auroc``, ``pixel_auroc`` (None without maps or masks), ``realised_fpr`` and
        ``target_fpr``.
    """
    import numpy as np

    from oddity.metrics import image_auroc, pixel_auroc

    result = model.score(samples, verbose=False)
    labels = np.array([s.label for s in samples])
    metrics: dict[str, Any] = {"image_auroc": image_auroc(labels, result.scores), "pixel_auroc": None,
                               "realised_fpr": float(np.mean(result.scores[labels == 0] > model.threshold_.value)),
                               "target_fpr": model.threshold_.target_fpr}
    if result.maps is not None:
        known = [i for i, s in enumerate(samples) if s.label == 0 or s.mask_path]
        metrics["pixel_auroc"] = pixel_auroc([result.maps[i] for i in known],
                                             [samples[i].load_mask(result.maps[i].shape) for i in known])
    return metrics


def worker(dataset: str, max_fit: int | None, max_test: int | None, refit: bool = True) -> dict[str, Any]:
    """Run in the child process: select, then score every candidate and (with `refit`) the
    winner refitted on every training image on the test split.

    Parameters
    ----------
    dataset : str
        An MVTec-layout dataset folder.
    max_fit : int or None
        The most training images used (all when None).
    max_test : int or None
        The most normal and the most defective test images scored (all when None).
    refit : bool, default True
        Refit the winner on every training image and score it (``refit_test``; None without).

    Returns
    -------
    dict
        The fields of a `SelectRun`.
    """
    from oddity.bench.image import MASK_THRESHOLD
    from oddity.bench.lighting import subsample
    from oddity.image.data import evaluation_samples, training_samples
    from oddity.image.select import select_detector

    samples = subsample(training_samples(dataset), max_fit, seed=1)
    test = evaluation_samples(dataset, MASK_THRESHOLD)
    test = (subsample([s for s in test if s.label == 0], max_test, seed=2)
            + subsample([s for s in test if s.label == 1], max_test, seed=3))
    start = time.perf_counter()
    selection = select_detector(samples, keep_candidates=True, refit=refit, verbose=False)
    seconds = time.perf_counter() - start
    return {"selection": selection.to_dict(), "select_seconds": seconds,
            "test": [None if model is None else candidate_metrics(model, test) for model in selection.candidates],
            "refit_test": None if selection.detector is None else candidate_metrics(selection.detector, test)}


def run_one(dataset: Path, max_fit: int | None, max_test: int | None, timeout: float,
            refit: bool = True) -> SelectRun:
    """One dataset in a fresh Python process; failures are recorded, not raised.

    Parameters
    ----------
    dataset : pathlib.Path
        An MVTec-layout dataset folder.
    max_fit, max_test : int or None
        As in `worker`.
    timeout : float
        Seconds allowed for the child process.
    refit : bool, default True
        As in `worker`.

    Returns
    -------
    SelectRun
        The results, or the error.
    """
    run = SelectRun(dataset=str(dataset), max_fit=max_fit, max_test=max_test)
    result, run.error = run_in_child("oddity.bench.select:worker", [str(dataset), max_fit, max_test, refit],
                                     timeout)
    if result is not None:
        for name, value in result.items():
            setattr(run, name, value)
    return run


def summary(run: SelectRun) -> dict[str, Any]:
    """The chosen candidate's test image AUROC beside the best candidate's and the best
    single detector's (the ensemble left out), and whether the gap meets `TARGET_GAP`.

    Parameters
    ----------
    run : SelectRun
        A finished run.

    Returns
    -------
    dict
        ``chosen``, ``chosen_auroc``, ``best``, ``best_auroc``, ``best_single``,
        ``best_single_auroc``, ``gap`` (to the best single detector) and ``passes``.
    """
    rows = run.selection["rows"]
    scored = [(row["detector"], test["image_auroc"]) for row, test in zip(rows, run.test) if test]
    chosen = next(i for i, row in enumerate(rows) if row["detector"] == run.selection["chosen"]
                  and row["params"] == run.selection["chosen_params"])
    chosen_auroc = run.test[chosen]["image_auroc"] if run.test[chosen] else None
    best = max(scored, key=lambda item: item[1])
    singles = [item for item in scored if item[0] != "ensemble"]
    best_single = max(singles, key=lambda item: item[1]) if singles else best
    gap = None if chosen_auroc is None else max(best[1], best_single[1]) - chosen_auroc
    return {"chosen": rows[chosen]["detector"], "chosen_auroc": chosen_auroc, "best": best[0],
            "best_auroc": best[1], "best_single": best_single[0], "best_single_auroc": best_single[1],
            "gap": gap, "passes": gap is not None and gap <= TARGET_GAP}


def markdown_table(runs: list[SelectRun]) -> str:
    """The model-choice page: per dataset the validation table beside each candidate's test
    metrics, then the summary table.

    Parameters
    ----------
    runs : list of SelectRun
        The runs to show.

    Returns
    -------
    str
        The Markdown page.
    """
    commands = list(dict.fromkeys(run.command for run in runs))
    rule = next((run.selection["rule"] for run in runs if run.selection), "")
    lines = [
        "# Model choice without defect labels (`oddity fit auto`)",
        "",
        f"Reproduce: {' then '.join(f'`{c}`' for c in commands)}.",
        "",
        ("Each candidate is fitted at its defaults on the training images less a held-out part and "
        "scored on the held-out normal images, synthetic anomalies made from them "
        "(`oddity.image.synth`) and lighting shifts of them (`oddity.image.photometric.SHIFTS`). "
        f"Rule, fixed before any test set was looked at: {rule}. The test columns evaluate each "
        "candidate, as fitted for validation, on the real test split (never used by the choice; FPR: "
        "realised false-positive rate of its image threshold on the normal test images, target 0.01); "
        "magnetic tile masks are binarised at half their brightest value. Target: the chosen "
        f"detector within {TARGET_GAP} test image AUROC of the best. Seconds (fit s, selection s): "
        "wall-clock, indicative, not a timing run."),
        "",
        ("| dataset | fit / held-out images | chosen | its test image AUROC | best candidate | best single "
         "detector | gap | pass | chosen, refitted on all: image / pixel AUROC, FPR | selection s |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        name = Path(run.dataset).name
        if run.error:
            lines.append(f"| {name} | failed: {run.error} |" + " |" * 8)
            continue
        s, refit = summary(run), run.refit_test or {}
        lines.append(
            f"| {name} | {run.selection['fit_images']} / {run.selection['validation_images']} | "
            f"**{s['chosen']}** | {cell(s['chosen_auroc'])} | {s['best']} {cell(s['best_auroc'])} | "
            f"{s['best_single']} {cell(s['best_single_auroc'])} | {cell(s['gap'])} | "
            f"{'yes' if s['passes'] else 'no'} | {cell(refit.get('image_auroc'))} / "
            f"{cell(refit.get('pixel_auroc'))}, {cell(refit.get('realised_fpr'), 2)} | "
            f"{cell(run.select_seconds, 0)} |")
    for run in runs:
        if run.error:
            continue
        caps = [f"at most {run.max_fit} training images" if run.max_fit else "",
                f"at most {run.max_test} normal and {run.max_test} defective test images" if run.max_test else ""]
        lines += ["", f"## {Path(run.dataset).name}", "",
                  f"{run.selection['fit_images']} images fit each candidate, {run.selection['validation_images']} "
                  f"held out, {run.selection['anomalies']} synthetic anomalies"
                  + "".join(f"; {c} (a fixed random subset)" for c in caps if c) + ".", "",
                  ("| candidate | synthetic image AUROC | synthetic pixel AUROC | lighting FPR | allowed | "
                   "penalty | score | fit s | test image AUROC | test pixel AUROC | test FPR |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row, test in zip(run.selection["rows"], run.test):
            settings = ", ".join(f"{k}={v}" for k, v in row["params"].items())
            name = row["detector"] + (f" ({settings})" if settings else "")
            if row["detector"] == run.selection["chosen"] and row["params"] == run.selection["chosen_params"]:
                name = f"**{name}** (chosen)"
            if row["error"]:
                lines.append(f"| {name} | failed: {row['error']} |" + " |" * 9)
                continue
            test = test or {}
            lines.append(f"| {name} | {cell(row['image_auroc'])} | {cell(row['pixel_auroc'])} | "
                         f"{cell(row['lighting_fpr'], 2)} | {cell(row['allowed_fpr'], 3)} | "
                         f"{cell(row['penalty'])} | {cell(row['score'])} | {cell(row['fit_seconds'], 0)} | "
                         f"{cell(test.get('image_auroc'))} | {cell(test.get('pixel_auroc'))} | "
                         f"{cell(test.get('realised_fpr'), 2)} |")
    return "\n".join(lines) + "\n"

