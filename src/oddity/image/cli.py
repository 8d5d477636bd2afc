"""The image side of the `oddity` command: fit, predict and eval for image detectors, and the
image-only verbs export, zeroshot, demo and compare (see `oddity.core.modality`).

Outputs: `predict` and `zeroshot` write scores.csv, overlays/ and masks/ (`oddity.image.predictions`);
`export` writes model.onnx and metadata.json (`oddity.export.onnx`). A model exported with
`oddity export` predicts through onnxruntime only: torch is not imported on that path.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import oddity
from oddity.core.errors import ConfigError
from oddity.core.modality import describe, detector_params, write_json
from oddity.core.outputs import claim
from oddity.core.registry import get_detector_class
from oddity.image import resolution

if TYPE_CHECKING:
    from oddity.core.detector import Detector
    from oddity.core.results import ImagePrediction
    from oddity.export.engine import ExportedModel
    from oddity.image.detector import ImageDetector
    from oddity.image.evaluate import Evaluation

# The demo set: small enough to run in seconds, with a quarter of the 80 normal training images
# held out so that the calibrated thresholds rest on 20 images (achievable FPR 1/21).
DEMO_SET = {"n_train": 80, "n_test_good": 20, "n_test_defect": 8, "size": 128, "seed": 0}
DEMO_PARAMS = {"image_size": 128, "seed": 0, "calibration_fraction": 0.25}


def as_image_detector(detector: Detector, source: str) -> ImageDetector:
    """Return `detector` if it is an image detector, else raise a ConfigError naming `source`.

    Parameters
    ----------
    detector : Detector
        A detector or loaded model.
    source : str
        Where it came from (a model path or an option), for the error message.

    Returns
    -------
    ImageDetector
        The same detector.

    Raises
    ------
    ConfigError
        If `detector` is not an image detector.
    """
    from oddity.image.detector import ImageDetector

    if not isinstance(detector, ImageDetector):
        raise ConfigError(f"{source}: a {detector.modality} detector ({detector.name}); this "
                          "command needs an image detector")
    return detector


def print_metrics(evaluation: Evaluation) -> None:
    """Print the metrics of an evaluation, one per line, then its notes.

    Parameters
    ----------
    evaluation : Evaluation
        The evaluation to print.
    """
    from oddity.image.evaluate import metric_rows

    rows = metric_rows(evaluation.metrics)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for note in evaluation.notes:
        print(f"  note: {note}")


def model_config(detector: ImageDetector, model: str, data: str) -> dict[str, Any]:
    """Return the settings block of a report: paths, detector parameters and thresholds.

    Parameters
    ----------
    detector : ImageDetector
        The fitted detector.
    model : str
        Path of the model file.
    data : str
        Path of the evaluated dataset.

    Returns
    -------
    dict
        Setting name to value.
    """
    return {"model": model, "data": data, "detector": detector.name, **detector.get_params(),
            "image threshold": describe(detector.threshold_),
            "pixel threshold": describe(detector.pixel_threshold_)}


def fit_and_save(detector_name: str, data: str, out: str, params: dict[str, Any], verbose: bool,
         shots: int | None = None, augment: str = "none", dask: str | None = None) -> ImageDetector:
    """Create, fit (on `shots` images when given), save and describe a detector.

    Shared by `fit` and `demo`. A zero-shot detector reads no data: its configuration is saved.

    Parameters
    ----------
    detector_name : str
        Registered image detector name.
    data : str
        Dataset folder whose normal training images are read.
    out : str
        Model file to write.
    params : dict
        Detector parameters.
    verbose : bool
        Show progress.
    shots : int, optional
        Few-shot: fit on this many normal images (see `oddity.image.fewshot`).
    augment : str, optional
        Few-shot augmentation: ``"none"``, ``"flips"``, ``"rotations"`` or ``"flips+rotations"``.
    dask : str, optional
        Extract the training features on this Dask cluster (``local:N`` or ``tcp://HOST:PORT``,
        `oddity.distributed.fit`).

    Returns
    -------
    ImageDetector
        The fitted detector.

    Raises
    ------
    ConfigError
        If `detector_name` is not an image detector, a few-shot parameter is invalid, or the
        detector cannot fit on Dask.
    DataError
        If the training images cannot be read.
    """
    from oddity.image.data import training_samples
    from oddity.image.fewshot import fit_few_shot

    detector = as_image_detector(oddity.create(detector_name, **params), f"detector {detector_name!r}")
    if detector.zero_shot:
        detector.fit(verbose=verbose).save(out)
        print(f"{detector_name} is zero-shot: nothing to learn, {data} was not read; configuration "
              f"saved to {out} (score a batch with `oddity eval {out} --data DIR` or `oddity zeroshot`)")
        return detector
    samples = training_samples(data)
    start = time.perf_counter()
    if dask is not None:
        from oddity.distributed import dask_client, fit_on_cluster

        with dask_client(dask) as client:
            fit_on_cluster(client, detector, samples, verbose=verbose)
    elif shots is None:
        detector.fit(samples, verbose=verbose)
    else:
        fit_few_shot(detector, samples, shots, augment=augment, verbose=verbose)
    seconds = time.perf_counter() - start
    detector.save(out)
    skipped = len(detector.skipped_ or ())
    used = len(samples) - skipped if shots is None else f"{shots} of the {len(samples)}"
    note = f" ({skipped} unreadable file{'s' * (skipped != 1)} skipped)" if skipped else ""
    print(f"fitted {detector_name} on {used} images from {data} in {seconds:.1f} s{note}")
    print(f"image threshold: {describe(detector.threshold_)}")
    if detector.localises:
        print(f"pixel threshold: {describe(detector.pixel_threshold_)}")
    else:
        print(f"pixel threshold: none ({detector_name} scores whole images, no anomaly maps)")
    print(f"model saved to {out}")
    return detector


def fit(detector_name: str, args: argparse.Namespace, params: dict[str, Any]) -> None:
    """`oddity fit` for an image detector (few-shot with --shots).

    A few-shot fit of a detector with a `coreset_ratio` keeps every patch unless that parameter
    is given.

    Parameters
    ----------
    detector_name : str
        Registered image detector name.
    args : argparse.Namespace
        Reads `data`, `out`, `quiet`, `shots`, `augment`, `dask` and the series options
        `time_column`, `value_columns` and `dates` (which must be unset).
    params : dict
        Detector parameters (`coreset_ratio` may be added).

    Raises
    ------
    ConfigError
        If a series option is given, `--augment` is given without `--shots`, or a parameter is
        invalid.
    DataError
        If the training images cannot be read.
    """
    series_only = [option for option, given in (("--time-column", args.time_column),
                   ("--value-columns", args.value_columns), ("--dates", args.dates != "auto")) if given]
    if series_only:
        raise ConfigError(f"{series_only[0]} applies to series detectors; {detector_name} is an image detector")
    if args.shots is None and args.augment != "none":
        raise ConfigError("--augment applies to few-shot fits only; add --shots K")
    if args.shots is not None and args.dask:
        raise ConfigError("--dask does not apply to few-shot fits (--shots): a few images fit at once here")
    if args.shots is not None and "coreset_ratio" in get_detector_class(detector_name).param_names():
        params.setdefault("coreset_ratio", 1.0)  # a few images: keep every patch in the bank
    fit_and_save(detector_name, args.data, args.out, params, not args.quiet, args.shots, args.augment, args.dask)


def fit_auto(args: argparse.Namespace) -> None:
    """`oddity fit auto`: choose an image detector without defect labels, save it
    (`oddity.image.select`): print the validation table, save the winner fitted on every
    normal image, with the table in its model file.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `data`, `out`, `quiet`, `seed` and `target_fpr`; every other detector option
        must be unset.

    Raises
    ------
    ConfigError
        If an option that sets one detector's parameters is given.
    DataError
        If there are too few normal images or they cannot be read.
    """
    from oddity.image.select import describe_selection, select_detector

    refused = [option for option, given in (
        ("--set", bool(args.set)), ("--image-size", args.image_size is not None),
        ("--tile", args.tile is not None), ("--backbone", args.backbone is not None),
        ("--shots", args.shots is not None), ("--augment", args.augment != "none"),
        ("--skip-bad", args.skip_bad), ("--time-column", args.time_column),
        ("--value-columns", args.value_columns), ("--dates", args.dates != "auto")) if given]
    if refused:
        raise ConfigError(f"{refused[0]} does not apply to `oddity fit auto`, which tries each "
                          "candidate at its defaults; fit one detector by name to set it")
    start = time.perf_counter()
    selection = select_detector(args.data, seed=0 if args.seed is None else args.seed,
                                target_fpr=0.01 if args.target_fpr is None else args.target_fpr,
                                verbose=not args.quiet)
    detector = selection.detector
    assert detector is not None
    detector.save(args.out)
    print(describe_selection(selection, args.data))
    print(f"fitted {detector.name} on every normal image of {args.data}; "
          f"{time.perf_counter() - start:.1f} s in all")
    print(f"image threshold: {describe(detector.threshold_)}")
    if detector.localises:
        print(f"pixel threshold: {describe(detector.pixel_threshold_)}")
    print(f"model saved to {args.out} (the validation table is in its JSON, under state.selection_)")


def predict(model: Detector | ExportedModel, args: argparse.Namespace) -> None:
    """`oddity predict` with an image model file or an export (onnxruntime, no torch).

    Parameters
    ----------
    model : Detector or ExportedModel
        A fitted image detector or an exported model.
    args : argparse.Namespace
        Reads `inputs`, `out`, `quiet`, `skip_bad`, `model` (its path) and `dask` (score on a
        Dask cluster at this address).

    Raises
    ------
    ConfigError
        If `model` is not an image model or the `--dask` address is invalid.
    DataError
        If an input is missing or holds no image.
    """
    from oddity.export.engine import ExportedModel
    from oddity.image.data import unlabelled_samples

    samples = unlabelled_samples(args.inputs)
    if args.dask:  # the workers write overlays and masks (`oddity.distributed.predict`)
        from oddity.distributed import dask_client, predict_to_folder

        with dask_client(args.dask) as client:
            prediction = predict_to_folder(client, args.model, samples, args.out, skip_bad=args.skip_bad,
                                           verbose=not args.quiet)
        describe_prediction(model, prediction, args.out)
        return
    if isinstance(model, ExportedModel):
        prediction = model.predict(samples, verbose=not args.quiet, skip_bad=args.skip_bad)
    else:
        detector = as_image_detector(model, args.model)
        detector.skip_bad = args.skip_bad
        prediction = detector.predict(samples, verbose=not args.quiet)
    write_prediction(model, prediction, args.out)


def write_prediction(detector: ImageDetector | ExportedModel, prediction: ImagePrediction, out: str) -> None:
    """Write a prediction folder (`oddity.image.predictions`) and say what is in it.

    Parameters
    ----------
    detector : ImageDetector or ExportedModel
        The model that made the prediction (its name is printed).
    prediction : ImagePrediction
        The prediction to write.
    out : str
        The prediction folder.
    """
    from oddity.image.predictions import write_predictions

    write_predictions(out, prediction, getattr(detector, "map_range_", None))
    describe_prediction(detector, prediction, out)


def describe_prediction(detector: ImageDetector | ExportedModel, prediction: ImagePrediction, out: str) -> None:
    """Say what a written prediction folder holds (and how its overlays are coloured).

    Parameters
    ----------
    detector : ImageDetector or ExportedModel
        The model that made the prediction.
    prediction : ImagePrediction
        The prediction (maps are not needed).
    out : str
        The prediction folder.
    """
    csv_path = Path(out) / "scores.csv"
    flagged = int(prediction.labels.sum())
    print(f"{len(prediction)} images: {flagged} anomalous, {len(prediction) - flagged} normal "
          f"(image threshold {prediction.threshold:.6g})")
    if not detector.localises:
        print(f"scores: {csv_path} ({detector.name} scores whole images: no overlays or masks)")
        return
    print(f"scores: {csv_path}; overlays: {Path(out) / 'overlays'}; masks: {Path(out) / 'masks'}")
    if getattr(detector, "map_range_", None) is None and not getattr(detector, "zero_shot", False):
        print("note: this model was saved without the colour range of its calibration maps, so the "
              "overlays share the range of this run's maps (refit or re-export it to colour every run alike)")


def evaluate(model: Detector, args: argparse.Namespace) -> None:
    """`oddity eval` of an image model: metrics, optionally as JSON and an HTML report.

    Parameters
    ----------
    model : Detector
        A fitted image detector.
    args : argparse.Namespace
        Reads `model` (its path), `data`, `quiet`, `skip_bad`, `mask_threshold`, `json`,
        `report` (optional outputs) and `dask` (score on a Dask cluster at this address).

    Raises
    ------
    ConfigError
        If `model` is not an image detector, or cannot be scored on Dask.
    DataError
        If the test split cannot be read.
    """
    from oddity.image.evaluate import evaluate as evaluate_images
    from oddity.report import write_report

    detector = as_image_detector(model, args.model)
    detector.skip_bad = args.skip_bad
    if args.dask:  # scores on the cluster, metrics here
        from oddity.distributed import dask_client, score_on_cluster

        with dask_client(args.dask) as client:
            evaluation = evaluate_images(
                detector, args.data, mask_threshold=args.mask_threshold, verbose=not args.quiet,
                scorer=lambda samples: score_on_cluster(client, args.model, samples, skip_bad=args.skip_bad,
                                                        verbose=not args.quiet, desc="evaluate (partitions)"))
    else:
        evaluation = evaluate_images(detector, args.data, mask_threshold=args.mask_threshold,
                                     verbose=not args.quiet)
    print(f"{detector.name} on {args.data}:")
    print_metrics(evaluation)
    if args.json:
        write_json(args.json, evaluation.metrics)
        print(f"metrics written to {args.json}")
    if args.report:
        page = write_report(args.report, evaluation, model_config(detector, args.model, args.data))
        print(f"report written to {page}")


def cmd_export(args: argparse.Namespace) -> None:
    """`oddity export`: write model.onnx and metadata.json after the parity gate.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `model`, `out`, `images` (gate images; default the calibration images),
        `quantize` and `quiet`.

    Raises
    ------
    OutputError
        If `--out` may not be written.
    ConfigError
        If the model is not an image detector.
    ExportError
        If the detector cannot be exported or the exported graph fails the parity gate.
    """
    from oddity.export.onnx import export_onnx

    claim(inputs=[args.model, *(args.images or [])], folders=[args.out])
    detector = as_image_detector(oddity.load(args.model), args.model)
    metadata = export_onnx(detector, args.out, images=args.images, quantize=args.quantize,
                           verbose=not args.quiet)
    gate = metadata["parity"]
    maps = "" if gate["max_map_difference"] is None else \
        f", largest map difference {gate['max_map_difference']:.3g} of the pixel threshold"
    print(f"parity on {gate['images']} images: largest relative score difference "
          f"{gate['max_score_difference']:.3g}{maps}, labels identical")
    if "quantized" in metadata:
        q_gate = metadata["quantized"]["parity"]
        print(f"int8: largest relative score difference {q_gate['max_score_difference']:.3g}, labels identical")
    print(f"exported {detector.name} to {Path(args.out) / 'model.onnx'} with metadata.json "
          f"(run it with `oddity predict {args.out} INPUTS --out DIR`)")


def cmd_zeroshot(args: argparse.Namespace) -> None:
    """`oddity zeroshot`: score a batch of images against each other and write a prediction folder.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `inputs`, `out`, `detector`, `skip_bad`, `quiet` and the detector options
        (`image_size`, `backbone`, `seed`, `target_fpr`, `set`).

    Raises
    ------
    OutputError
        If `--out` may not be written.
    ConfigError
        If the detector is not a zero-shot image detector or a parameter is invalid.
    DataError
        If an input is missing or holds no image.
    """
    from oddity.image.data import unlabelled_samples

    claim(inputs=args.inputs, folders=[args.out])
    detector = as_image_detector(oddity.create(args.detector, **detector_params(args.detector, args)),
                                  f"--detector {args.detector!r}")
    if not detector.zero_shot:
        zero_shot = [n for n in oddity.list_detectors() if getattr(get_detector_class(n), "zero_shot", False)]
        raise ConfigError(f"--detector {args.detector!r} needs training (use `oddity fit`); "
                          f"zero-shot detectors: {', '.join(zero_shot)}")
    detector.skip_bad = args.skip_bad
    prediction = detector.predict(unlabelled_samples(args.inputs), verbose=not args.quiet)
    write_prediction(detector, prediction, args.out)


def cmd_demo(args: argparse.Namespace) -> None:
    """`oddity demo`: generate a synthetic set, fit, predict, evaluate and write a report.

    Everything goes under `--out`: data/, model.oddity, predictions/, metrics.json, report/.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `out`, `detector` and `quiet`.

    Raises
    ------
    OutputError
        If `--out` may not be written.
    ConfigError
        If the detector is not an image detector.
    """
    from oddity.image.data import unlabelled_samples
    from oddity.image.evaluate import evaluate
    from oddity.image.predictions import write_predictions
    from oddity.image.synth import make_inspection_set
    from oddity.report import write_report

    claim(folders=[args.out])
    out = Path(args.out)
    verbose = not args.quiet
    data, model = out / "data", out / "model.oddity"
    print(f"generating a synthetic inspection set in {data}")
    make_inspection_set(data, **DEMO_SET)
    detector = fit_and_save(args.detector, str(data), str(model), DEMO_PARAMS, verbose)
    prediction = detector.predict(unlabelled_samples([data / "test"]), verbose=verbose)
    scores = write_predictions(out / "predictions", prediction, detector.map_range_)
    evaluation = evaluate(detector, data, verbose=verbose)
    write_json(out / "metrics.json", evaluation.metrics)
    page = write_report(out / "report", evaluation, model_config(detector, str(model), str(data)),
                        title=f"oddity demo: {args.detector} on synthetic woven fabric")
    print(f"\n{args.detector} on the synthetic test set:")
    print_metrics(evaluation)
    print(f"\ndata:        {data}\nmodel:       {model}\npredictions: {scores}\n"
          f"metrics:     {out / 'metrics.json'}\nreport:      {page}")


def cmd_compare(args: argparse.Namespace) -> None:
    """`oddity compare`: align a query image to a reference and write the comparison.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `reference`, `query`, `out`, `image_size`, `radius`, `features`, `no_ecc`,
        `no_align` and `min_inliers`.

    Raises
    ------
    OutputError
        If `--out` may not be written.
    AlignmentError
        If the alignment fails its checks.
    """
    from oddity.image.reference import GoldenSample, write_comparison

    claim(inputs=[args.reference, args.query], folders=[args.out])
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


def image_size_option(text: str) -> int | str:
    """Parse `--image-size`: "auto" or a whole number of pixels (its range is checked by the
    detector).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    int or str
        The number, or "auto".

    Raises
    ------
    argparse.ArgumentTypeError
        If `text` is neither.
    """
    if text.strip().lower() == resolution.AUTO:
        return resolution.AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number of pixels, got {text!r}") from None


def mask_fraction(text: str) -> float:
    """Parse `--mask-threshold`: a number in (0, 1].

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    float
        The fraction.

    Raises
    ------
    argparse.ArgumentTypeError
        If `text` is not a number in (0, 1].
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def add_arguments(verb: str, parser: argparse.ArgumentParser) -> None:
    """Add the image options of the shared verbs (fit, predict and eval).

    Parameters
    ----------
    verb : str
        ``"fit"``, ``"predict"`` or ``"eval"``.
    parser : argparse.ArgumentParser
        The verb's parser.
    """
    if verb == "fit":
        parser.add_argument("--image-size", type=image_size_option, metavar="N",
                            help="short side of the model input in pixels, or auto (the default of "
                                 "most detectors: chosen from the training images' size)")
        parser.add_argument("--backbone", metavar="NAME", help="feature extractor (detectors that take one)")
        parser.add_argument("--tile", type=int, metavar="N", help="split images into overlapping N-pixel tiles")
        parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
        parser.add_argument("--shots", type=int, metavar="K",
                            help="few-shot: fit on K normal images chosen with --seed (thresholds by "
                                 "leave-one-shot-out; PatchCore keeps every patch)")
        parser.add_argument("--augment", default="none", choices=["none", "flips", "rotations", "flips+rotations"],
                            help="few-shot: add these views of each shot (only where the product allows)")
        parser.add_argument("--dask", metavar="ADDRESS",
                            help="extract training features on a Dask cluster: local:N or tcp://HOST:PORT "
                                 "(patchcore, padim, gaussian_ad; the learning step runs here)")
    elif verb == "predict":
        parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
        parser.add_argument("--dask", metavar="ADDRESS",
                            help="score on a Dask cluster: local:N (N worker processes here) or "
                                 "tcp://HOST:PORT (a running scheduler; workers must see the same paths)")
    elif verb == "eval":
        parser.add_argument("--report", metavar="DIR", help="write an HTML report into this folder")
        parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
        parser.add_argument("--dask", metavar="ADDRESS",
                            help="score on a Dask cluster: local:N or tcp://HOST:PORT (metrics computed here)")
        parser.add_argument("--mask-threshold", type=mask_fraction, metavar="F",
                            help="binarise grey (anti-aliased) ground-truth masks at this fraction of "
                                 "their brightest value, e.g. 0.5; by default such masks are refused")


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the image-only commands: export, zeroshot, demo and compare.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        The sub-commands of `oddity`.
    parents : list of argparse.ArgumentParser
        The options every writing command shares.
    """
    export = commands.add_parser(
        "export", parents=parents, help="export an image model to ONNX (with a parity gate)",
        description="Write model.onnx and metadata.json after checking that onnxruntime gives the "
                    "same scores and labels as the model (on its calibration images or --images).")
    export.add_argument("model", metavar="MODEL", help="model file written by `oddity fit`")
    export.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default: onnx)")
    export.add_argument("--out", required=True, metavar="DIR", help="output folder")
    export.add_argument("--images", nargs="+", metavar="INPUT",
                        help="images or folders for the parity gate (default: the calibration images)")
    export.add_argument("--quantize", choices=["int8"], help="also write an int8 graph (own gate: same labels)")
    export.set_defaults(run=cmd_export)

    zeroshot = commands.add_parser(
        "zeroshot", parents=parents, help="score a batch of images against each other (no training)",
        description="Zero-shot: score unlabelled images against each other (no training images); "
                    "write scores.csv, overlays/ and masks/ as `oddity predict` does. Thresholds "
                    "come from the batch itself, which assumes most images are normal.")
    zeroshot.add_argument("inputs", nargs="+", metavar="INPUT_DIR", help="image files or folders (searched recursively)")
    zeroshot.add_argument("--out", required=True, metavar="DIR", help="output folder (not one of the inputs)")
    zeroshot.add_argument("--detector", default="musc", metavar="NAME", help="zero-shot detector (default: musc)")
    zeroshot.add_argument("--image-size", type=image_size_option, metavar="N",
                          help="short side of the model input in pixels (auto: 256)")
    zeroshot.add_argument("--backbone", metavar="NAME", help="feature extractor")
    zeroshot.add_argument("--seed", type=int, metavar="S", help="random seed")
    zeroshot.add_argument("--target-fpr", type=float, metavar="F",
                          help="false-positive rate the batch thresholds aim at")
    zeroshot.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    zeroshot.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="other detector parameter, value read as JSON (repeatable), e.g. --set chunk_mb=128")
    zeroshot.set_defaults(run=cmd_zeroshot)

    demo = commands.add_parser("demo", parents=parents, help="run the whole pipeline on synthetic data",
                               description="Generate a synthetic inspection set, fit, predict, "
                                           "evaluate and write an HTML report.")
    demo.add_argument("--out", default="oddity-demo", metavar="DIR", help="output folder (default: oddity-demo)")
    demo.add_argument("--detector", default="patchcore", metavar="NAME", help="detector to fit (default: patchcore)")
    demo.set_defaults(run=cmd_demo)

    compare = commands.add_parser("compare", parents=parents, help="compare a query image with a reference image",
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
