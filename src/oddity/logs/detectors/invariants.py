"""Invariant Mining of event counts.

Paper: J.-G. Lou, Q. Fu, S. Yang, Y. Xu, J. Li, "Mining Invariants from Console Logs for System
Problem Detection", USENIX ATC 2010,
https://www.usenix.org/conference/usenix-atc-10/mining-invariants-console-logs-system-problem-detection

Method: each sequence becomes a vector x of event counts. An invariant is a sparse integer
vector a with a . x = 0 in (nearly) every normal sequence, e.g. as many "closed" events as
"opened" ones, or "this event never happens". The dimension r of the invariant space is the
number of right singular vectors of the count matrix, from the smallest singular value up,
that hold (|X v| < 0.5) in at least `support` of the sequences. Invariants are searched on
supports of 1 to `max_events` events, smallest first, skipping supersets of a support already
used: on a support the candidate is the singular vector of the smallest singular value,
scaled so that its smallest coefficient is 1 and rounded to integers; it is kept when it holds
in at least `support` of the sequences. The search stops at r invariants. A sequence's score
is the number of invariants it breaks.

Deviations:
- the threshold is the conformal quantile of held-out normal scores at `target_fpr`; the
  paper flags every sequence that breaks an invariant;
- identical count vectors are searched once, weighted by how often they occur (same result,
  faster);
- events never seen when fitting share one "unknown" column, zero in every training sequence,
  so "no unknown event" is an invariant like any other.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.logs.detector import LogDetector, event_counts
from oddity.logs.results import LogSequences

HOLDS = 0.5  # |a . x| below this counts as holding (counts and coefficients are integers)


def _holds(counts: np.ndarray, weights: np.ndarray, vector: np.ndarray) -> float:
    """Weighted share of count vectors on which `vector` holds."""
    return float(weights[np.abs(counts @ vector) < HOLDS].sum() / weights.sum())


@register("invariants")
class InvariantMining(LogDetector):
    """Invariant Mining (Lou et al. 2010): linear relations among event counts that normal
    sequences keep; a sequence's score is the number it breaks.

    Parameters
    ----------
    support : float
        Share of training sequences an invariant must hold in, in (0, 1].
    max_events : int
        Most events one invariant relates (the search grows combinatorially with it).
    **kwargs
        `LogDetector` parameters (target_fpr, calibration_fraction, seed).

    Attributes
    ----------
    terms_ : numpy.ndarray
        The mined invariants as (invariant, event column, coefficient) rows.
    n_invariants_ : int
        Number of invariants mined.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> from oddity.logs.results import LogSequences
    >>> rng = np.random.default_rng(0)
    >>> def session(failed):
    ...     reads, writes = int(rng.integers(1, 4)), int(rng.integers(0, 2))
    ...     return (["open block <*>"] + ["read block <*>"] * reads + ["write block <*>"] * writes
    ...             + ["error block <*>"] * failed + ["close block <*>"])
    >>> labels = (np.arange(120) % 10 == 9).astype(int)           # 1 = anomalous
    >>> train = LogSequences(ids=[f"s{i}" for i in range(120)],
    ...                      events=[session(bool(y)) for y in labels], labels=labels)
    >>> detector = oddity.create("invariants").fit(train, verbose=False)
    >>> probe = LogSequences(ids=["ok", "failed"], events=[session(False), session(True)])
    >>> detector.predict(probe).labels.tolist(), detector.threshold_.method
    ([False, True], 'conformal')
    """

    def __init__(self, *, support: float = 0.98, max_events: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.support = support
        self.max_events = max_events

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if not 0.0 < self.support <= 1.0:
            raise ConfigError(f"support must lie in (0, 1], got {self.support}")
        if self.max_events < 1:
            raise ConfigError(f"max_events must be at least 1, got {self.max_events}")

    def _dimension(self, counts: np.ndarray, weights: np.ndarray) -> int:
        """Estimated dimension of the invariant space."""
        _, _, vt = np.linalg.svd(counts * np.sqrt(weights)[:, None], full_matrices=True)
        dimension = 0
        for vector in vt[::-1]:  # smallest singular value first
            if _holds(counts, weights, vector) < self.support:
                break
            dimension += 1
        return dimension

    def _candidate(self, counts: np.ndarray, weights: np.ndarray, columns: tuple[int, ...]):
        """The integer invariant on `columns`, or None when none holds often enough."""
        part = counts[:, columns]
        if len(columns) == 1:
            vector = np.ones(1)
        else:
            vector = np.linalg.svd(part * np.sqrt(weights)[:, None], full_matrices=True)[2][-1]
            smallest = np.abs(vector).min()
            if smallest < 1e-8:
                return None  # a smaller support holds the relation
            vector = np.round(vector / smallest)
        if _holds(part, weights, vector) < self.support:
            return None
        return vector

    def _search(self, counts: np.ndarray, weights: np.ndarray,
                dimension: int) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """Up to `dimension` invariants as (event columns, integer coefficients)."""
        found: list[tuple[tuple[int, ...], np.ndarray]] = []
        for size in range(1, self.max_events + 1):
            for columns in combinations(range(counts.shape[1]), size):
                if len(found) >= dimension:
                    return found
                if any(set(used) <= set(columns) for used, _ in found):
                    continue
                vector = self._candidate(counts, weights, columns)
                if vector is not None:
                    found.append((columns, vector))
        return found

    def _fit_codes(self, codes, labels, sequences, verbose) -> None:
        counts, weights = np.unique(event_counts(codes, self.n_codes), axis=0, return_counts=True)
        weights = weights.astype(np.float64)
        found = self._search(counts, weights, self._dimension(counts, weights))
        # stored as (invariant, event column, coefficient) triples
        self.terms_ = np.array([(k, c, a) for k, (columns, vector) in enumerate(found)
                                for c, a in zip(columns, vector)], dtype=np.float64).reshape(-1, 3)
        self.n_invariants_ = len(found)

    def _score_codes(self, codes, sequences: LogSequences):
        counts = event_counts(codes, self.n_codes)
        relations = np.zeros((counts.shape[1], self.n_invariants_))
        if len(self.terms_):
            invariant, column, coefficient = self.terms_.T
            relations[column.astype(int), invariant.astype(int)] = coefficient
        return (np.abs(counts @ relations) >= HOLDS).sum(1).astype(np.float64), None

    def invariants(self) -> list[dict[str, int]]:
        """The mined invariants, each as {template: integer coefficient} (sum of count x
        coefficient is zero in normal sequences; `<unknown>` is any event never seen)."""
        self._check_fitted()
        names = ["<unknown>"] + list(self.vocabulary_ or [])
        out: list[dict[str, int]] = [{} for _ in range(self.n_invariants_)]
        for invariant, column, coefficient in self.terms_:
            out[int(invariant)][names[int(column)]] = int(coefficient)
        return out

    def _get_state(self):
        values, arrays = super()._get_state()
        return {**values, "n_invariants_": self.n_invariants_}, {**arrays, "terms_": self.terms_}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.n_invariants_ = int(values["n_invariants_"])
        self.terms_ = arrays["terms_"]
