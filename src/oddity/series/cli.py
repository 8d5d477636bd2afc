"""The series verbs of the `oddity` command (see `oddity.core.modality`): fit on a series file,
predict one, evaluate on NAB, and `explain`. The work is done in `oddity.series.commands`
(imported inside the verbs, so that `oddity --help` does not load pandas)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from oddity.core.errors import ConfigError

if TYPE_CHECKING:
    from oddity.core.detector import Detector

# --dates: how to read dates like 01/02/2024 (None: refuse when both orders are plausible)
DATE_ORDERS = {"auto": None, "day-first": True, "month-first": False}


def fit(detector_name: str, args: argparse.Namespace, params: dict[str, Any]) -> None:
    """`oddity fit` for a series detector: read one history file, fit, save.

    Parameters
    ----------
    detector_name : str
        Registered detector name.
    args : argparse.Namespace
        Reads `data`, `out`, `quiet`, `time_column`, `value_columns`, `dates` (a key of
        `DATE_ORDERS`) and `shots` (must be unset).
    params : dict
        Detector parameters.

    Raises
    ------
    ConfigError
        If `--shots` is given.
    DataError
        If the file cannot be read or is shorter than the detector needs.
    """
    from oddity.series.commands import fit_file

    if getattr(args, "shots", None) is not None:
        raise ConfigError("--shots applies to image detectors; a series model learns from one history file")
    fit_file(detector_name, args.data, args.out, params, not args.quiet, args.time_column, args.value_columns,
             DATE_ORDERS[args.dates])


def predict(model: Detector, args: argparse.Namespace) -> None:
    """`oddity predict` with a series model: one file in, a prediction folder out.

    Parameters
    ----------
    model : Detector
        A fitted series detector.
    args : argparse.Namespace
        Reads `inputs` (exactly one file) and `out`.

    Raises
    ------
    ConfigError
        If more than one input is given.
    DataError
        If the file cannot be read or is shorter than the model needs.
    """
    from oddity.series.commands import predict_file

    predict_file(model, args.inputs, args.out)  # type: ignore[arg-type]


def follow(model: Detector, args: argparse.Namespace) -> None:
    """`oddity predict --follow` with a series model: rows scored as they arrive.

    Parameters
    ----------
    model : Detector
        A fitted series detector.
    args : argparse.Namespace
        Reads `inputs` (one CSV file, or ``-`` for stdin) and `idle` (seconds without new rows
        before stopping; None: follow until interrupted).

    Raises
    ------
    ConfigError
        If more than one input is given.
    DataError
        If the file cannot be opened or a row cannot be read.
    """
    from oddity.series.commands import follow as follow_rows

    follow_rows(model, args.inputs, args.idle)  # type: ignore[arg-type]


def evaluate(model: Detector, args: argparse.Namespace) -> None:
    """`oddity eval` of a series model on a NAB folder (refitted per series).

    Parameters
    ----------
    model : Detector
        A series detector; its configuration is refitted on each series.
    args : argparse.Namespace
        Reads `data` (a NAB folder), `json` (optional metrics file), `quiet` and `report`
        (must be unset).

    Raises
    ------
    ConfigError
        If `--report` is given.
    DataError
        If the folder is not a NAB layout or a file cannot be read.
    """
    from oddity.series.commands import evaluate_folder

    if getattr(args, "report", None):
        raise ConfigError("--report: not available for series models; use --json")
    evaluate_folder(model, args.data, args.json, not args.quiet)  # type: ignore[arg-type]


def cmd_explain(args: argparse.Namespace) -> None:
    """`oddity explain`: the top lags and covariates behind an xgb_forecast model's forecasts.

    Parameters
    ----------
    args : argparse.Namespace
        Reads `model`, `data`, `start`, `end`, `top`, `target` and `plot` (optional PNG).

    Raises
    ------
    OutputError
        If the plot may not be written.
    ConfigError
        If the model cannot explain or an argument is invalid.
    """
    from oddity.core.outputs import claim
    from oddity.series.explain import explain_file

    claim(inputs=[args.model, args.data], files=[args.plot])
    explain_file(args.model, args.data, args.start, args.end, args.top, args.target, args.plot)


def add_arguments(verb: str, parser: argparse.ArgumentParser) -> None:
    """Add the series options of the shared verbs: `--follow` and `--idle` (predict), reading (fit).

    Parameters
    ----------
    verb : str
        ``"fit"``, ``"predict"`` or ``"eval"``; eval gets no option.
    parser : argparse.ArgumentParser
        The verb's parser.
    """
    if verb == "predict":
        parser.add_argument("--follow", action="store_true",
                            help="series: score rows as they are appended to INPUT ('-': stdin), "
                                 "one CSV line per row on stdout (no --out)")
        parser.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                            help="with --follow on a file: stop after this long without new rows "
                                 "(default: keep following until interrupted)")
    if verb == "fit":
        parser.add_argument("--time-column", metavar="NAME", help="series: the time column (default: detected)")
        parser.add_argument("--value-columns", nargs="+", metavar="NAME",
                            help="series: the value columns (default: all but the time column)")
        parser.add_argument("--dates", choices=sorted(DATE_ORDERS, key=str), default="auto",
                            help="series: how to read dates like 01/02/2024 (default auto: refuse when "
                                 "both orders are plausible); remembered by the model")


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the series-only command `explain`.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        The sub-commands of `oddity`.
    parents : list of argparse.ArgumentParser
        The options every writing command shares.
    """
    explain = commands.add_parser("explain", parents=parents,
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
