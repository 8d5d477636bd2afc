"""The `oddity` command: fit, predict, eval, zeroshot, explain, compare, demo and list.

Every command takes `--quiet` (no progress bars) and `--help`. Errors oddity raises on purpose
(`OddityError`: bad data, bad options, unreadable model) print one line `error: ...` on stderr
and exit with status 2, as do usage errors; other I/O failures (disk full, permission denied)
print `error: ...` and exit 1; Ctrl-C prints one line and exits 130. Every output (model,
JSON, prediction folder, report, demo data) is written atomically or staged and moved into
place at the end, so an interrupted command leaves no partial output behind. Modules that
pull in torch, scipy or matplotlib are imported inside the commands, so `--help` answers at
once and a Ctrl-C during start-up is handled like any other.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import oddity
from oddity.core.errors import ConfigError, OddityError
from oddity.core.persistence import atomic_write
from oddity.core.registry import get_detector_class
from oddity.core.thresholds import Threshold

if TYPE_CHECKING:
    from oddity.core.detector import Detector
    from oddity.core.results import ImagePrediction
    from oddity.image.detector import ImageDetector
    from oddity.image.evaluate import Evaluation

# The demo set: small enough to run in seconds, with a quarter of the 80 normal training images
# held out so that the calibrated thresholds rest on 20 images (achievable FPR 1/21).
DEMO_SET = {"n_train": 80, "n_test_good": 20, "n_test_defect": 8, "size": 128, "seed": 0}
DEMO_PARAMS = {"image_size": 128, "seed": 0, "calibration_fraction": 0.25}


# --- helpers ------------------------------------------------------------------------------
def _parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` with value read as JSON (numbers, true/false, null, lists, quoted strings);
    a value that is not JSON is kept as a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set coreset_ratio=0.05")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def _detector_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Constructor parameters from the options given (defaults left to the detector), checked
    against what the detector accepts."""
    accepted = get_detector_class(name).param_names()
    params: dict[str, Any] = {}
    for option in ("image_size", "backbone", "seed", "tile", "target_fpr"):
        if getattr(args, option, None) is not None:
            params[option] = getattr(args, option)
    if args.skip_bad:
        params["skip_bad"] = True
    params.update(_parse_assignment(item) for item in args.set)
    if "backbone" in params and "backbone" not in accepted:
        raise ConfigError(f"--backbone: detector {name!r} takes no backbone")
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"detector {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                          f"its parameters are: {', '.join(accepted)}")
    return params


def _as_image_detector(detector: Detector, source: str) -> ImageDetector:
    from oddity.image.detector import ImageDetector

    if not isinstance(detector, ImageDetector):
        raise ConfigError(f"{source}: a {detector.modality} detector ({detector.name}); this "
                          "command needs an image detector")
    return detector


def _check_apart(outputs: Sequence[str | Path], inputs: Sequence[str | Path]) -> None:
    """Refuse an output that is, or lies inside, an input folder, or that contains an input:
    outputs must never overwrite (or be read back as) inputs."""
    for output in outputs:
        out = Path(output).resolve()
        for item in inputs:
            source = Path(item).resolve()
            if out == source or (source.is_dir() and source in out.parents) or out in source.parents:
                raise ConfigError(f"{output}: output would be written into the input {item}; "
                                  "choose an output location outside the inputs")


def _describe(threshold: Threshold | None) -> str:
    if threshold is None:
        return "none"
    return (f"{threshold.value:.6g} ({threshold.method}, target FPR {threshold.target_fpr:g}, "
            f"achievable {threshold.achievable_fpr:.3g}, {threshold.n_calibration} held-out images)")


def _print_metrics(evaluation: Evaluation) -> None:
    from oddity.image.evaluate import metric_rows

    rows = metric_rows(evaluation.metrics)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for note in evaluation.notes:
        print(f"  note: {note}")


def _model_config(detector: ImageDetector, model: str, data: str) -> dict[str, Any]:
    return {"model": model, "data": data, "detector": detector.name, **detector.get_params(),
            "image threshold": _describe(detector.threshold_),
            "pixel threshold": _describe(detector.pixel_threshold_)}


def _write_json(path: str | Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# --- commands -----------------------------------------------------------------------------
def _fit(detector_name: str, data: str, out: str, params: dict[str, Any], verbose: bool,
         shots: int | None = None, augment: str = "none") -> ImageDetector:
    """Create, fit (on `shots` images when given), save and describe a detector (shared by
    `fit` and `demo`)."""
    from oddity.image.data import training_samples
    from oddity.image.fewshot import fit_few_shot

    detector = _as_image_detector(oddity.create(detector_name, **params), f"detector {detector_name!r}")
    if detector.zero_shot:
        detector.fit(verbose=verbose).save(out)
        print(f"{detector_name} is zero-shot: nothing to learn, {data} was not read; configuration "
              f"saved to {out} (score a batch with `oddity eval {out} --data DIR` or `oddity zeroshot`)")
        return detector
    samples = training_samples(data)
    start = time.perf_counter()
    if shots is None:
        detector.fit(samples, verbose=verbose)
    else:
        fit_few_shot(detector, samples, shots, augment=augment, verbose=verbose)
    seconds = time.perf_counter() - start
    detector.save(out)
    skipped = len(detector.skipped_ or ())
    used = len(samples) - skipped if shots is None else f"{shots} of the {len(samples)}"
    note = f" ({skipped} unreadable file{'s' * (skipped != 1)} skipped)" if skipped else ""
    print(f"fitted {detector_name} on {used} images from {data} in {seconds:.1f} s{note}")
    print(f"image threshold: {_describe(detector.threshold_)}")
    if detector.localises:
        print(f"pixel threshold: {_describe(detector.pixel_threshold_)}")
    else:
        print(f"pixel threshold: none ({detector_name} scores whole images, no anomaly maps)")
    print(f"model saved to {out}")
    return detector


def cmd_fit(args: argparse.Namespace) -> None:
    params = _detector_params(args.detector, args)
    if get_detector_class(args.detector).modality == "series":
        from oddity.series import cli as series_cli

        if args.shots is not None:
            raise ConfigError("--shots applies to image detectors; a series model learns from one history file")
        series_cli.fit(args.detector, args.data, args.out, params, not args.quiet,
                       args.time_column, args.value_columns)
        return
    if args.shots is None and args.augment != "none":
        raise ConfigError("--augment applies to few-shot fits only; add --shots K")
    if args.shots is not None and "coreset_ratio" in get_detector_class(args.detector).param_names():
        params.setdefault("coreset_ratio", 1.0)  # a few images: keep every patch in the bank
    _fit(args.detector, args.data, args.out, params, not args.quiet, args.shots, args.augment)


def cmd_compare(args: argparse.Namespace) -> None:
    from oddity.image.reference import GoldenSample, write_comparison

    _check_apart([args.out], [args.reference, args.query])
    golden = GoldenSample(args.reference, image_size=args.image_size, radius=args.radius,
                          features=args.features, ecc=not args.no_ecc, min_inliers=args.min_inliers)
    comparison = golden.compare(args.query, align_query=not args.no_align)
    path = write_comparison(args.out, comparison, {"reference": args.reference, "query": args.query},
                            golden.settings())
    alignment = comparison.alignment
    if alignment is not None:
        print(f"aligned by {alignment.method}: {alignment.inliers} inliers of {alignment.matches} matches"
              + (f", ECC correlation {alignment.ecc_correlation:.3f}" if alignment.ecc_correlation else ""))
    print(f"score {comparison.score:.6g}; heat map, warped query and {path.name} in {args.out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from oddity.image.data import unlabelled_samples

    model = oddity.load(args.model)
    if args.follow or args.out is None:
        if not (args.follow and model.modality == "series"):
            raise ConfigError("--out DIR is required, except with --follow for a series model")
        from oddity.series import cli as series_cli

        series_cli.follow(model, args.inputs, args.idle)  # type: ignore[arg-type]
        return
    _check_apart([args.out], args.inputs)
    if model.modality == "series":
        from oddity.series import cli as series_cli

        series_cli.predict(model, args.inputs, args.out)  # type: ignore[arg-type]
        return
    detector = _as_image_detector(model, args.model)
    detector.skip_bad = args.skip_bad
    prediction = detector.predict(unlabelled_samples(args.inputs), verbose=not args.quiet)
    _write_prediction(detector, prediction, args.out)


def _write_prediction(detector: ImageDetector, prediction: ImagePrediction, out: str) -> None:
    """Write a prediction folder (`oddity.image.predictions`) and say what is in it."""
    from oddity.image.predictions import write_predictions

    csv_path = write_predictions(out, prediction)
    flagged = int(prediction.labels.sum())
    print(f"{len(prediction)} images: {flagged} anomalous, {len(prediction) - flagged} normal "
          f"(image threshold {prediction.threshold:.6g})")
    if prediction.maps is None:
        print(f"scores: {csv_path} ({detector.name} scores whole images: no overlays or masks)")
    else:
        print(f"scores: {csv_path}; overlays: {Path(out) / 'overlays'}; masks: {Path(out) / 'masks'}")


def cmd_zeroshot(args: argparse.Namespace) -> None:
    from oddity.image.data import unlabelled_samples

    _check_apart([args.out], args.inputs)
    detector = _as_image_detector(oddity.create(args.detector, **_detector_params(args.detector, args)),
                                  f"--detector {args.detector!r}")
    if not detector.zero_shot:
        zero_shot = [n for n in oddity.list_detectors() if getattr(get_detector_class(n), "zero_shot", False)]
        raise ConfigError(f"--detector {args.detector!r} needs training (use `oddity fit`); "
                          f"zero-shot detectors: {', '.join(zero_shot)}")
    detector.skip_bad = args.skip_bad
    prediction = detector.predict(unlabelled_samples(args.inputs), verbose=not args.quiet)
    _write_prediction(detector, prediction, args.out)


def cmd_eval(args: argparse.Namespace) -> None:
    from oddity.image.evaluate import evaluate
    from oddity.report import write_report

    _check_apart([p for p in (args.json, args.report) if p], [args.data])
    model = oddity.load(args.model)
    if model.modality == "series":
        from oddity.series import cli as series_cli

        if args.report:
            raise ConfigError("--report: not available for series models; use --json")
        series_cli.evaluate(model, args.data, args.json, not args.quiet)  # type: ignore[arg-type]
        return
    detector = _as_image_detector(model, args.model)
    evaluation = evaluate(detector, args.data, verbose=not args.quiet)
    print(f"{detector.name} on {args.data}:")
    _print_metrics(evaluation)
    if args.json:
        _write_json(args.json, evaluation.metrics)
        print(f"metrics written to {args.json}")
    if args.report:
        page = write_report(args.report, evaluation, _model_config(detector, args.model, args.data))
        print(f"report written to {page}")


def cmd_demo(args: argparse.Namespace) -> None:
    from oddity.image.data import unlabelled_samples
    from oddity.image.evaluate import evaluate
    from oddity.image.predictions import write_predictions
    from oddity.image.synth import make_inspection_set
    from oddity.report import write_report

    out = Path(args.out)
    verbose = not args.quiet
    data, model = out / "data", out / "model.oddity"
    print(f"generating a synthetic inspection set in {data}")
    make_inspection_set(data, **DEMO_SET)
    detector = _fit(args.detector, str(data), str(model), DEMO_PARAMS, verbose)
    prediction = detector.predict(unlabelled_samples([data / "test"]), verbose=verbose)
    scores = write_predictions(out / "predictions", prediction)
    evaluation = evaluate(detector, data, verbose=verbose)
    _write_json(out / "metrics.json", evaluation.metrics)
    page = write_report(out / "report", evaluation, _model_config(detector, str(model), str(data)),
                        title=f"oddity demo: {args.detector} on synthetic woven fabric")
    print(f"\n{args.detector} on the synthetic test set:")
    _print_metrics(evaluation)
    print(f"\ndata:        {data}\nmodel:       {model}\npredictions: {scores}\n"
          f"metrics:     {out / 'metrics.json'}\nreport:      {page}")


def cmd_explain(args: argparse.Namespace) -> None:
    from oddity.series.explain import explain_file

    explain_file(args.model, args.data, args.start, args.end, args.top, args.target, args.plot)


def cmd_list(args: argparse.Namespace) -> None:
    names = oddity.list_detectors()
    width = max(len(name) for name in names)
    for name in names:
        cls = get_detector_class(name)
        summary = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {cls.modality:<8} {summary[0] if summary else ''}".rstrip())


# --- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `oddity` command and its sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    parser = argparse.ArgumentParser(prog="oddity", description="Offline, CPU-first anomaly detection.")
    parser.add_argument("--version", action="version", version=f"oddity {oddity.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", parents=[common], help="learn normal from images or a series and save a model",
                              description="Fit a detector on normal images and save it with its "
                                          "calibrated thresholds.")
    fit.add_argument("detector", metavar="DETECTOR", help="detector name (see `oddity list`)")
    fit.add_argument("--data", required=True, metavar="DIR",
                     help="MVTec AD category (uses train/good) or a folder of normal images; "
                          "for a series detector, a CSV or Parquet file")
    fit.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    fit.add_argument("--image-size", type=int, metavar="N", help="short side of the model input in pixels")
    fit.add_argument("--backbone", metavar="NAME", help="feature extractor (detectors that take one)")
    fit.add_argument("--seed", type=int, metavar="S", help="random seed")
    fit.add_argument("--tile", type=int, metavar="N", help="split images into overlapping N-pixel tiles")
    fit.add_argument("--target-fpr", type=float, metavar="F",
                     help="false-positive rate the thresholds are calibrated for")
    fit.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    fit.add_argument("--time-column", metavar="NAME", help="series: the time column (default: detected)")
    fit.add_argument("--value-columns", nargs="+", metavar="NAME",
                     help="series: the value columns (default: all but the time column)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="other detector parameter, value read as JSON (repeatable), "
                          "e.g. --set coreset_ratio=0.05")
    fit.add_argument("--shots", type=int, metavar="K",
                     help="few-shot: fit on K normal images chosen with --seed (thresholds by "
                          "leave-one-shot-out; PatchCore keeps every patch)")
    fit.add_argument("--augment", default="none", choices=["none", "flips", "rotations", "flips+rotations"],
                     help="few-shot: add these views of each shot (only where the product allows)")
    fit.set_defaults(run=cmd_fit)

    predict = commands.add_parser("predict", parents=[common], help="score images or a series with a model",
                                  description="Score image files and folders; write scores.csv, "
                                              "overlays/ and masks/ into the output folder.")
    predict.add_argument("model", metavar="MODEL", help="model file written by `oddity fit`")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    predict.add_argument("--out", metavar="DIR", help="output folder (not one of the inputs)")
    predict.add_argument("--follow", action="store_true",
                         help="series: score rows as they are appended to INPUT ('-': stdin), "
                              "one CSV line per row on stdout")
    predict.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                         help="with --follow on a file: stop after this long without new rows "
                              "(default: keep following until interrupted)")
    predict.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    predict.set_defaults(run=cmd_predict)

    evaluate_ = commands.add_parser("eval", parents=[common], help="measure a model on a labelled test set",
                                    description="Compute image and pixel metrics on a labelled test set.")
    evaluate_.add_argument("model", metavar="MODEL", help="model file written by `oddity fit`")
    evaluate_.add_argument("--data", required=True, metavar="DIR",
                           help="MVTec AD category (uses test/ and ground_truth/) or a folder with "
                                "good/ and one sub-folder per defect; for a series model, a NAB "
                                "folder (refits per series)")
    evaluate_.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    evaluate_.add_argument("--report", metavar="DIR", help="write an HTML report into this folder")
    evaluate_.set_defaults(run=cmd_eval)

    zeroshot = commands.add_parser(
        "zeroshot", parents=[common], help="score a batch of images against each other (no training)",
        description="Zero-shot: score unlabelled images against each other (no training images); "
                    "write scores.csv, overlays/ and masks/ as `oddity predict` does. Thresholds "
                    "come from the batch itself, which assumes most images are normal.")
    zeroshot.add_argument("inputs", nargs="+", metavar="INPUT_DIR", help="image files or folders (searched recursively)")
    zeroshot.add_argument("--out", required=True, metavar="DIR", help="output folder (not one of the inputs)")
    zeroshot.add_argument("--detector", default="musc", metavar="NAME", help="zero-shot detector (default: musc)")
    zeroshot.add_argument("--image-size", type=int, metavar="N", help="short side of the model input in pixels")
    zeroshot.add_argument("--backbone", metavar="NAME", help="feature extractor")
    zeroshot.add_argument("--seed", type=int, metavar="S", help="random seed")
    zeroshot.add_argument("--target-fpr", type=float, metavar="F",
                          help="false-positive rate the batch thresholds aim at")
    zeroshot.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    zeroshot.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="other detector parameter, value read as JSON (repeatable), e.g. --set chunk_mb=128")
    zeroshot.set_defaults(run=cmd_zeroshot)

    demo = commands.add_parser("demo", parents=[common], help="run the whole pipeline on synthetic data",
                               description="Generate a synthetic inspection set, fit, predict, "
                                           "evaluate and write an HTML report.")
    demo.add_argument("--out", default="oddity-demo", metavar="DIR", help="output folder (default: oddity-demo)")
    demo.add_argument("--detector", default="patchcore", metavar="NAME", help="detector to fit (default: patchcore)")
    demo.set_defaults(run=cmd_demo)

    explain = commands.add_parser("explain", parents=[common],
                                  help="top lags/covariates behind a series model's forecasts",
                                  description="SHAP contributions of the lags and covariates to "
                                              "an xgb_forecast model's forecasts over a time range.")
    explain.add_argument("model", metavar="MODEL", help="xgb_forecast model written by `oddity fit`")
    explain.add_argument("data", metavar="FILE", help="CSV or Parquet series file")
    explain.add_argument("--start", metavar="S", help="first step or timestamp (default: the start)")
    explain.add_argument("--end", metavar="E", help="last step or timestamp, inclusive (default: the end)")
    explain.add_argument("--top", type=int, default=10, metavar="N", help="contributors shown (default 10)")
    explain.add_argument("--target", metavar="NAME",
                         help="channel to explain, or 'anomaly' for the anomaly model "
                              "(default: the channel with the highest score in the range)")
    explain.add_argument("--plot", metavar="PNG", help="also write a plot of the contributors")
    explain.set_defaults(run=cmd_explain)
    compare = commands.add_parser("compare", parents=[common], help="compare a query image with a reference image",
                                  description="Golden-sample inspection: align QUERY to REFERENCE, then "
                                              "write heatmap.png, warped.png and comparison.json.")
    compare.add_argument("reference", metavar="REFERENCE", help="image of a good part")
    compare.add_argument("query", metavar="QUERY", help="image to inspect")
    compare.add_argument("--out", required=True, metavar="DIR", help="output folder")
    compare.add_argument("--features", default="orb", choices=["orb", "akaze", "sift"], help="keypoints to match")
    compare.add_argument("--no-ecc", action="store_true", help="no ECC refinement of the homography")
    compare.add_argument("--no-align", action="store_true", help="compare the images as they are")
    compare.add_argument("--min-inliers", type=int, default=15, metavar="N",
                         help="fewest RANSAC inliers for a feature alignment (default 15)")
    compare.add_argument("--radius", type=int, default=2, metavar="R",
                         help="search radius in feature-grid cells (default 2)")
    compare.add_argument("--image-size", type=int, default=256, metavar="N", help="short side of the model input")
    compare.set_defaults(run=cmd_compare)

    list_ = commands.add_parser("list", parents=[common], help="list the registered detectors",
                                description="List the registered detectors.")
    list_.set_defaults(run=cmd_list)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `oddity` command with `argv` (default: the process arguments); return the exit
    status (0 success, 1 I/O failure, 2 error in input or usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.run(args)
    except OddityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no partial output was left behind", file=sys.stderr)
        return 130
    return 0
