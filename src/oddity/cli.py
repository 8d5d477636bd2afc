"""The `oddity` command: argument parsing and dispatch only.

The shared verbs fit, predict and eval dispatch on the modality of the detector (or model) to
that modality's `cli` module, found by discovery (`oddity.core.modality`); each modality adds
its own options and verbs (images: export, zeroshot, demo, compare; series: explain). `list`
lists the registered detectors; `serve` starts the inspection service (`oddity.serve`).

Every command takes `--quiet` (no progress bars) and `--help`. Errors oddity raises on purpose
(`OddityError`: bad data, bad options, unreadable model) print one line `error: ...` on stderr
and exit with status 2, as do usage errors; other I/O failures (disk full, permission denied)
print `error: ...` and exit 1; Ctrl-C prints one line and exits 130. Every output (model,
JSON, prediction folder, report, demo data) is written atomically or staged and moved into
place at the end, so an interrupted command leaves no partial output behind. Each command
names its inputs and outputs (`oddity.core.outputs.claim`) before any work: an output is never
an input, and an existing one is replaced (whole) only with `--overwrite`. Modules that
pull in torch, scipy or matplotlib are imported inside the commands, so `--help` answers at
once and a Ctrl-C during start-up is handled like any other.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import oddity
from oddity.core.errors import ConfigError, OddityError
from oddity.core.modality import detector_params, modality_cli, modality_names, verb
from oddity.core.outputs import claim, output_policy
from oddity.core.registry import get_detector_class
from oddity.serve.runner import add_arguments as add_serve_arguments


def cmd_fit(args: argparse.Namespace) -> None:
    """`oddity fit`: fit a detector on normal data and save the model.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `detector`, `data`, `out`, the detector options (`seed`, `target_fpr`, `set`) and
        the fit options of the detector's modality.

    Raises
    ------
    OddityError
        On an unknown detector, bad options, unreadable data or an output that would replace
        an input or an existing file without `--overwrite`.
    """
    if args.detector == "auto":  # model choice among image detectors (oddity.image.select)
        claim(inputs=[args.data], files=[args.out])
        verb("image", "fit_auto")(args)
        return
    modality = get_detector_class(args.detector).modality
    params = detector_params(args.detector, args)
    claim(inputs=[args.data], files=[args.out])
    verb(modality, "fit")(args.detector, args, params)


def cmd_predict(args: argparse.Namespace) -> None:
    """`oddity predict`: score inputs with a model (or an export) and write the results.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `model`, `inputs`, `out`, `follow` (when the modality adds it: rows scored as
        they arrive and printed, nothing written) and the modality's predict options.

    Raises
    ------
    ConfigError
        If `out` is missing without `follow`.
    OddityError
        On an unreadable model or inputs, or an output that would replace an input or an
        existing folder without `--overwrite`.
    """
    from oddity.export.engine import ExportedModel, is_export

    if getattr(args, "follow", False):  # rows scored as they arrive, printed, nothing written
        model = oddity.load(args.model)
        verb(model.modality, "follow")(model, args)
        return
    if args.out is None:
        raise ConfigError("--out DIR is required (only `--follow` on a series model prints instead)")
    claim(inputs=[args.model, *args.inputs], folders=[args.out])
    model = ExportedModel(args.model) if is_export(args.model) else oddity.load(args.model)
    verb(model.modality, "predict")(model, args)


def cmd_eval(args: argparse.Namespace) -> None:
    """`oddity eval`: measure a model on a labelled test set.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `model`, `data`, `json`, `report` (when the modality adds it) and the
        modality's eval options.

    Raises
    ------
    OddityError
        On an unreadable model or test set, or an output that would replace an input or an
        existing file without `--overwrite`.
    """
    claim(inputs=[args.model, args.data], files=[args.json], folders=[getattr(args, "report", None)])
    model = oddity.load(args.model)
    verb(model.modality, "evaluate")(model, args)


def cmd_serve(args: argparse.Namespace) -> None:
    """`oddity serve`: run the inspection service until interrupted.

    Parameters
    ----------
    args : argparse.Namespace
        The options of `oddity.serve.runner.add_arguments` (see `run_command`).

    Raises
    ------
    ConfigError
        On refused options or models that cannot be served.
    """
    from oddity.serve.runner import run_command

    run_command(args)


def cmd_list(args: argparse.Namespace) -> None:
    """`oddity list`: print each registered detector, its modality and summary line.

    Parameters
    ----------
    args : argparse.Namespace
        Reads no field.
    """
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
    writes = argparse.ArgumentParser(add_help=False)
    writes.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (whole and atomically; never an input)")
    parser = argparse.ArgumentParser(prog="oddity", description="Offline, CPU-first anomaly detection.")
    parser.add_argument("--version", action="version", version=f"oddity {oddity.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", parents=[common, writes], help="learn normal data and save a model",
                              description="Fit a detector on normal data and save it with its "
                                          "calibrated thresholds.")
    fit.add_argument("detector", metavar="DETECTOR",
                     help="detector name (see `oddity list`), or auto: choose an image detector on "
                          "held-out normal images with synthetic anomalies and lighting shifts")
    fit.add_argument("--data", required=True, metavar="DIR",
                     help="MVTec AD category (uses train/good) or a folder of normal images; "
                          "for a series detector, a CSV or Parquet file")
    fit.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    fit.add_argument("--seed", type=int, metavar="S", help="random seed")
    fit.add_argument("--target-fpr", type=float, metavar="F",
                     help="false-positive rate the thresholds are calibrated for")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="other detector parameter, value read as JSON (repeatable), "
                          "e.g. --set coreset_ratio=0.05")
    fit.set_defaults(run=cmd_fit)

    predict = commands.add_parser("predict", parents=[common, writes], help="score data with a model",
                                  description="Score inputs with a model and write the results "
                                              "(scores.csv and more) into the output folder.")
    predict.add_argument("model", metavar="MODEL",
                         help="model file written by `oddity fit`, or a folder / .onnx file written by `oddity export`")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders (searched recursively)")
    predict.add_argument("--out", metavar="DIR", help="output folder (not one of the inputs); required but with --follow")
    predict.set_defaults(run=cmd_predict)

    evaluate_ = commands.add_parser("eval", parents=[common, writes], help="measure a model on a labelled test set",
                                    description="Compute a model's metrics on a labelled test set.")
    evaluate_.add_argument("model", metavar="MODEL", help="model file written by `oddity fit`")
    evaluate_.add_argument("--data", required=True, metavar="DIR",
                           help="MVTec AD category (uses test/ and ground_truth/) or a folder with "
                                "good/ and one sub-folder per defect; for a series model, a NAB "
                                "folder (refits per series)")
    evaluate_.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    evaluate_.set_defaults(run=cmd_eval)

    for name in modality_names():
        cli = modality_cli(name)
        for verb_name, sub in (("fit", fit), ("predict", predict), ("eval", evaluate_)):
            if hasattr(cli, "add_arguments"):
                cli.add_arguments(verb_name, sub)
        if hasattr(cli, "add_commands"):
            cli.add_commands(commands, [common, writes])

    serve = commands.add_parser("serve", parents=[common], help="serve models over HTTP, with a browser UI and a store",
                                description="Serve models: REST API, browser UI at /ui/, inspection "
                                            "store, Prometheus metrics (see docs/service.md).")
    add_serve_arguments(serve)
    serve.set_defaults(run=cmd_serve)

    list_ = commands.add_parser("list", parents=[common], help="list the registered detectors",
                                description="List the registered detectors.")
    list_.set_defaults(run=cmd_list)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `oddity` command with `argv`.

    Errors are printed as one line on stderr, never raised.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after `oddity` (default: the process arguments).

    Returns
    -------
    int
        Exit status: 0 success (and `--help`, `--version`), 1 I/O failure, 2 error in input
        or usage, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            with output_policy(getattr(args, "overwrite", False)):
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
