"""Shared machinery of log detectors: vocabulary, calibration, results, saved reading setup.

A method subclasses `LogDetector` and writes two hooks:
- `_fit_codes(codes, labels, sequences, verbose)`: learn from sequences of event codes (int64 arrays; `PAD` 0,
  `UNKNOWN` 1 for a template not in the vocabulary, templates from `FIRST`), with their labels
  (1 = anomalous) when the method is supervised, else None, showing progress bars when
  `verbose`;
- `_score_codes(codes, sequences)`: return (scores per sequence, per-event scores or None), or
  (scores, per-event scores, explanations) with one text per sequence saying why it scored so.
It extends `_get_state` / `_set_state` with its learned arrays (calling super()). A method that
reads the messages themselves, not only their templates, sets `reads_contents = True`; the
command line then keeps each event's message in `LogSequences.contents`.

`fit` keeps the order of the sequences it is given (chronological when they come from a
file) and holds out the last `calibration_fraction` of them: an unsupervised method learns
from the normal sequences before that point (all of them when there are no labels), a
supervised one from every labelled sequence before it; the threshold is the split-conformal
quantile (`oddity.core.thresholds`) of the scores of the held-out normal sequences at
`target_fpr`. With fewer than MIN_CALIBRATION held-out normal sequences the threshold is
calibrated in-sample and marked so.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from oddity.core.checks import check_calibration, check_seed
from oddity.core.detector import Detector
from oddity.core.errors import DataError
from oddity.core.thresholds import Threshold, calibrate_threshold
from oddity.logs.results import LogPrediction, LogScores, LogSequences

PAD, UNKNOWN, FIRST = 0, 1, 2
MIN_CALIBRATION = 10


def event_counts(codes: list[np.ndarray], n_codes: int) -> np.ndarray:
    """Event-count vectors of coded sequences: one row per sequence, one column per code
    from `UNKNOWN` on (`PAD` never occurs in a sequence).

    Parameters
    ----------
    codes : list of int64 arrays
        Coded sequences (`LogDetector.encode`).
    n_codes : int
        Number of codes (`LogDetector.n_codes`).

    Returns
    -------
    numpy.ndarray
        float64 counts of shape (len(codes), n_codes - 1).
    """
    counts = np.zeros((len(codes), n_codes), dtype=np.float64)
    for row, c in enumerate(codes):
        np.add.at(counts[row], c, 1.0)
    return counts[:, UNKNOWN:]


class LogDetector(Detector):
    """Base of all log detectors (see the module docstring for the hooks).

    Parameters
    ----------
    target_fpr : float, default 0.01
        False-positive rate per sequence the calibrated threshold aims at.
    calibration_fraction : float, default 0.2
        Share of the sequences, the last ones, held out to calibrate the threshold.
    seed : int, default 0
        Seed of every random step.

    Attributes
    ----------
    vocabulary_ : list of str
        The event templates seen by `fit`, sorted; template i has the code `FIRST` + i.
    threshold_ : Threshold
        Threshold on the sequence score calibrated by `fit`.
    reading_ : dict or None
        How the fitted log was read and grouped (set by the command line; None from Python).
    """

    modality: ClassVar[str] = "logs"
    supervised: ClassVar[bool] = False
    reads_contents: ClassVar[bool] = False  # needs each event's message (LogSequences.contents)

    vocabulary_: list[str] | None = None
    reading_: dict[str, Any] | None = None  # how files are read and grouped (set by the CLI)

    def __init__(self, *, target_fpr: float = 0.01, calibration_fraction: float = 0.2,
                 seed: int = 0):
        self.target_fpr = target_fpr
        self.calibration_fraction = calibration_fraction
        self.seed = seed

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_calibration(self.target_fpr, self.calibration_fraction)
        check_seed(self.seed)

    # --- hooks --------------------------------------------------------------------------------
    def _fit_codes(self, codes: list[np.ndarray], labels: np.ndarray | None,
                   sequences: LogSequences, verbose: bool) -> None:
        raise NotImplementedError

    def _score_codes(self, codes: list[np.ndarray], sequences: LogSequences) -> tuple:
        raise NotImplementedError

    # --- encoding -----------------------------------------------------------------------------
    @property
    def n_codes(self) -> int:
        """Number of event codes: PAD, UNKNOWN and the vocabulary."""
        assert self.vocabulary_ is not None
        return FIRST + len(self.vocabulary_)

    def encode(self, sequences: LogSequences) -> list[np.ndarray]:
        """Event codes of each sequence (templates outside the vocabulary are `UNKNOWN`).

        Parameters
        ----------
        sequences : LogSequences
            Sessions or windows of events (templates), as `fit` took them.

        Returns
        -------
        list of numpy.ndarray
            One int64 array of codes per sequence.
        """
        assert self.vocabulary_ is not None
        index = {t: FIRST + i for i, t in enumerate(self.vocabulary_)}
        return [np.fromiter((index.get(t, UNKNOWN) for t in events), dtype=np.int64, count=len(events))
                for events in sequences.events]

    def _scores(self, sequences: LogSequences) -> LogScores:
        codes = self.encode(sequences)
        scores, event_scores, *explained = self._score_codes(codes, sequences)
        scores = np.asarray(scores, dtype=np.float64)
        assert scores.shape == (len(sequences),) and np.isfinite(scores).all(), self.name
        culprits = None
        if event_scores is not None:
            culprits = np.array([int(np.argmax(e)) if len(e) else -1 for e in event_scores])
        return LogScores(ids=list(sequences.ids), scores=scores, event_scores=event_scores,
                         culprits=culprits, explanations=explained[0] if explained else None)

    # --- public API ---------------------------------------------------------------------------
    def fit(self, sequences: LogSequences, *, verbose: bool = True) -> "LogDetector":
        """Learn from `sequences` and calibrate the threshold (see the module docstring).

        Parameters
        ----------
        sequences : LogSequences
            Sessions or windows in time order; labels are needed by supervised methods and
            used by unsupervised ones to leave anomalous sequences out.
        verbose : bool, default True
            Show progress bars while training.

        Returns
        -------
        LogDetector
            self

        Raises
        ------
        DataError
            No sequences, no normal sequence, or no labels for a supervised method.
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
        if len(sequences) == 0:
            raise DataError("no sequences to fit on")
        labels = sequences.labels
        if self.supervised and (labels is None or labels.min() == labels.max()):
            raise DataError(f"{self.name} is supervised: it needs labelled sequences of both "
                            "classes (give --labels or a labelled file)")
        n = len(sequences)
        normal = np.ones(n, bool) if labels is None else labels == 0
        if not normal.any():
            raise DataError("every sequence is labelled anomalous: nothing normal to learn from")
        cut = n - round(n * self.calibration_fraction)
        held_out = np.flatnonzero(normal[cut:]) + cut
        if len(held_out) < MIN_CALIBRATION:
            cut, held_out = n, np.zeros(0, np.int64)
        train = np.arange(cut) if self.supervised else np.flatnonzero(normal[:cut])
        if len(train) == 0:
            raise DataError("no sequence left to learn from before the held-out part")
        fit_part = sequences.subset(train)
        self.vocabulary_ = sorted({t for events in fit_part.events for t in events})
        self._fit_codes(self.encode(fit_part), fit_part.labels if self.supervised else None, fit_part,
                        verbose)
        if len(held_out):
            self.threshold_ = calibrate_threshold(self._scores(sequences.subset(held_out)).scores,
                                                  self.target_fpr)
        else:
            normal_fit = sequences.subset(np.flatnonzero(normal))
            threshold = calibrate_threshold(self._scores(normal_fit).scores, self.target_fpr)
            self.threshold_ = Threshold(**{**threshold.to_dict(), "method": "in-sample"})
        return self

    def score(self, sequences: LogSequences) -> LogScores:
        """Raw anomaly score per sequence (higher = more anomalous), per event when the method
        scores events, and the position of the most anomalous event.

        Parameters
        ----------
        sequences : LogSequences
            Sessions or windows of events (templates), as `fit` took them.

        Returns
        -------
        LogScores
            Scores, event scores (or None) and culprit positions.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        return self._scores(sequences)

    def predict(self, sequences: LogSequences) -> LogPrediction:
        """Scores plus labels (score above the calibrated threshold).

        Parameters
        ----------
        sequences : LogSequences
            Sessions or windows of events (templates), as `fit` took them.

        Returns
        -------
        LogPrediction
            The scores of `score`, the threshold and a label per sequence.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        result = self.score(sequences)
        assert self.threshold_ is not None
        return LogPrediction(ids=result.ids, scores=result.scores, event_scores=result.event_scores,
                             culprits=result.culprits, explanations=result.explanations,
                             threshold=self.threshold_.value,
                             labels=result.scores > self.threshold_.value)

    # --- persistence --------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"vocabulary_": self.vocabulary_, "reading_": self.reading_}, {}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.vocabulary_ = list(values["vocabulary_"])
        self.reading_ = values.get("reading_")
