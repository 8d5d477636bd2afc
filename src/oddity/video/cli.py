"""The video verbs of the `oddity` command (see `oddity.core.modality`): fit on normal clips,
predict clips (video files or frame folders), evaluate on a labelled set. The work is done in
`oddity.video.commands` (imported inside the verbs, so that `oddity --help` stays light)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from oddity.core.errors import ConfigError

if TYPE_CHECKING:
    from oddity.core.detector import Detector


def fit(detector_name: str, args: argparse.Namespace, params: dict[str, Any]) -> None:
    """`oddity fit` for a video detector: fit on normal clips and save the model.

    Parameters
    ----------
    detector_name : str
        Registered detector name.
    args : argparse.Namespace
        Reads `data` (a dataset folder or clips), `out`, `quiet` and `shots` (must be unset).
    params : dict
        Detector parameters.

    Raises
    ------
    ConfigError
        If `--shots` is given.
    OddityError
        If the clips cannot be read or the fit fails.
    """
    from oddity.video.commands import fit_clips

    if getattr(args, "shots", None) is not None:
        raise ConfigError("--shots applies to image detectors; a video model learns from normal clips")
    fit_clips(detector_name, args.data, args.out, params, not args.quiet)


def predict(model: Detector, args: argparse.Namespace) -> None:
    """`oddity predict` with a video model: clips in, a prediction folder out.

    Parameters
    ----------
    model : Detector
        A fitted video detector.
    args : argparse.Namespace
        Reads `inputs` (video files, frame folders or folders of clips), `out` and `quiet`.

    Raises
    ------
    OddityError
        If the clips cannot be read or `--out` cannot be written.
    """
    from oddity.video.commands import predict_clips

    predict_clips(model, args.inputs, args.out, not args.quiet)  # type: ignore[arg-type]


def evaluate(model: Detector, args: argparse.Namespace) -> None:
    """`oddity eval` of a video model on a labelled set of clips.

    Parameters
    ----------
    model : Detector
        A fitted video detector.
    args : argparse.Namespace
        Reads `data` (a labelled dataset folder), `json` (optional metrics file), `quiet` and
        `report` (must be unset).

    Raises
    ------
    ConfigError
        If `--report` is given.
    OddityError
        If the dataset cannot be read.
    """
    from oddity.video.commands import evaluate_set_file

    if getattr(args, "report", None):
        raise ConfigError("--report: not available for video models; use --json")
    evaluate_set_file(model, args.data, args.json, not args.quiet)  # type: ignore[arg-type]
