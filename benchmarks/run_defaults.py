"""Default-setting sweep: candidate settings of the image detectors compared by the protocol of
`oddity fit auto` (`oddity.image.select`: synthetic anomalies and lighting shifts of held-out
normal training images) and, beside it, on the real test split of each dataset. A setting
becomes a default only if it wins on the validation protocol and does not lose beyond noise on
any dataset's test split.

Usage:
  python benchmarks/run_defaults.py run --dataset DIR --out FILE.json [--max-fit N] [--max-test N]
  python benchmarks/run_defaults.py table FILE.json ... [--command CMD]

`run` writes one dataset's rows to FILE.json; `table` writes benchmarks/results/defaults.{md,json}
from several.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oddity.core.persistence import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"

# (detector, settings): each detector's present defaults first, then one change at a time;
# the cheapest detector first, so that a run cut short has its rows.
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("patchcore", {"pool_padding": "inside", "per_image_contrast": False, "colour_balance": False}),
    ("patchcore", {"pool_padding": "zeros", "per_image_contrast": False, "colour_balance": False}),
    ("patchcore", {"pool_padding": "zeros", "per_image_contrast": True, "colour_balance": False}),
    ("patchcore", {"pool_padding": "zeros", "per_image_contrast": True, "colour_balance": True}),
    ("padim", {"per_image_contrast": False, "colour_balance": False}),
    ("padim", {"per_image_contrast": True, "colour_balance": False}),
    ("padim", {"per_image_contrast": True, "colour_balance": True}),
    ("gaussian_ad", {"per_image_contrast": False, "colour_balance": False}),
    ("gaussian_ad", {"per_image_contrast": True, "colour_balance": False}),
    ("gaussian_ad", {"per_image_contrast": True, "colour_balance": True}),
)
GREY_CHECKED = 8  # training images looked at to tell a grey dataset


def is_grey(samples: list) -> bool:
    """Whether the first `GREY_CHECKED` images have three equal channels (colour balance then
    changes nothing but the white-balance-shifted copies, so its candidates are skipped).

    Parameters
    ----------
    samples : list of ImageSample
        Training samples.

    Returns
    -------
    bool
        True if every image looked at is grey.
    """
    import numpy as np

    return all(np.ptp(sample.load(), axis=-1).max() == 0 for sample in samples[:GREY_CHECKED])


def run(dataset: str, max_fit: int | None, max_test: int | None) -> Iterator[dict[str, Any]]:
    """Validate every candidate on one dataset's training images and test it on its test split
    (one candidate at a time: the held-out split and the synthetic anomalies depend on the seed
    alone, so every candidate sees the same).

    Parameters
    ----------
    dataset : str
        An MVTec-layout dataset folder.
    max_fit : int or None
        The most training images used (a fixed random subset; all when None).
    max_test : int or None
        The most normal and the most defective test images scored (all when None).

    Yields
    ------
    dict
        Dataset, image counts and one row per candidate done so far (validation and test
        figures), after each candidate.
    """
    from oddity.bench.image import MASK_THRESHOLD
    from oddity.bench.lighting import subsample
    from oddity.bench.select import candidate_metrics
    from oddity.image.data import evaluation_samples, training_samples
    from oddity.image.select import select_detector

    samples = subsample(training_samples(dataset), max_fit, seed=1)
    test = evaluation_samples(dataset, MASK_THRESHOLD)
    test = (subsample([s for s in test if s.label == 0], max_test, seed=2)
            + subsample([s for s in test if s.label == 1], max_test, seed=3))
    grey = is_grey(samples)
    result: dict[str, Any] = {"dataset": Path(dataset).name, "max_fit": max_fit, "max_test": max_test,
                              "test_normal": sum(s.label == 0 for s in test),
                              "test_defective": sum(s.label == 1 for s in test), "grey": grey, "rows": []}
    for name, params in CANDIDATES:
        if grey and params.get("colour_balance"):
            continue
        selection = select_detector(samples, candidates=[(name, params)], refit=False, keep_candidates=True,
                                    verbose=False)
        table = selection.to_dict()
        model = selection.candidates[0]
        result.update({key: table[key] for key in ("fit_images", "validation_images", "anomalies")})
        result["rows"].append({**table["rows"][0],
                               "test": None if model is None else candidate_metrics(model, test)})
        yield result


def number(value: float | None, digits: int = 3) -> str:
    """A figure for the table, "–" when absent.

    Parameters
    ----------
    value : float or None
        The figure.
    digits : int, default 3
        Decimals.

    Returns
    -------
    str
        The formatted figure.
    """
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The results page.

    Parameters
    ----------
    results : list of dict
        What `run` returned, one per dataset.
    command : str
        The commands that reproduce it.

    Returns
    -------
    str
        Markdown.
    """
    lines = ["# Image defaults: validation protocol and test split, one change at a time", "",
             f"Reproduce: {command}.", "",
             ("Each candidate is fitted on the training images less a held-out part and scored "
             "as `oddity fit auto` scores its candidates (`oddity.image.select`): synthetic "
             "anomalies made from the held-out normal images (image and pixel AUROC), and the "
             "held-out normal images under every lighting shift of "
             "`oddity.image.photometric.SHIFTS` (share above the calibrated threshold; allowed: "
             "2 x max(target, expected) FPR). Score: the selection rule (mean of the two "
             "synthetic AUROCs less the lighting penalty). The same fitted candidate is then "
             "evaluated on the real test split (never used for the validation figures; FPR: "
             "realised false-positive rate of its image threshold on the normal test images, "
             "target 0.01). Settings not named are the detector's defaults. Fit s: wall-clock "
             "seconds, indicative, not a timing run."), ""]
    for result in results:
        lines += [f"## {result['dataset']}", "",
                  f"{result['fit_images']} images fit each candidate, {result['validation_images']} "
                  f"held out, {result['anomalies']} synthetic anomalies (at most {result['max_fit']} "
                  f"training images, a fixed random subset); test: {result['test_normal']} normal, "
                  f"{result['test_defective']} defective images."
                  + (" Grey images: `colour_balance` changes nothing on them as they are (only on"
                     " their white-balance-shifted copies: see the lighting benchmark), so its rows"
                     " are left out."
                     if result["grey"] else ""), "",
                  ("| detector | settings | synthetic image AUROC | synthetic pixel AUROC | lighting FPR "
                   "| allowed | score | test image AUROC | test pixel AUROC | test FPR | fit s |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            settings = ", ".join(f"{k}={v}" for k, v in row["params"].items())
            test = row["test"] or {}
            if row.get("error"):
                lines.append(f"| {row['detector']} | {settings} | failed: {row['error']} |||||||||")
                continue
            lines.append(" | ".join([
                f"| {row['detector']}", settings, number(row["image_auroc"]), number(row["pixel_auroc"]),
                number(row["lighting_fpr"], 2), number(row["allowed_fpr"]), number(row["score"]),
                number(test.get("image_auroc")), number(test.get("pixel_auroc")),
                number(test.get("realised_fpr"), 2), number(row["fit_seconds"], 0)]) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="validate and test the candidates on one dataset")
    one.add_argument("--dataset", required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--max-fit", type=int, default=None)
    one.add_argument("--max-test", type=int, default=None)
    table = commands.add_parser("table", help="write benchmarks/results/defaults.{md,json}")
    table.add_argument("files", nargs="+")
    table.add_argument("--command", default="python benchmarks/run_defaults.py ...")
    args = parser.parse_args()
    if args.command == "run":
        for result in run(args.dataset, args.max_fit, args.max_test):
            text = json.dumps(result, indent=1)
            atomic_write(args.out, lambda tmp, text=text: Path(tmp).write_text(text))
            print(f"{result['rows'][-1]['detector']} {result['rows'][-1]['params']}: done", flush=True)
        return 0
    results = [json.loads(Path(name).read_text()) for name in args.files]
    atomic_write(RESULTS / "defaults.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    atomic_write(RESULTS / "defaults.md", lambda tmp: Path(tmp).write_text(markdown(results, args.command)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
