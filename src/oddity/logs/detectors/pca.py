"""PCA of event-count vectors.

Paper: W. Xu, L. Huang, A. Fox, D. Patterson, M. I. Jordan, "Detecting Large-Scale System
Problems by Mining Console Logs", SOSP 2009, https://doi.org/10.1145/1629575.1629587

Method: each sequence becomes a vector of event counts (one entry per template), weighted by
inverse document frequency and centred; PCA keeps the components that explain `variance` of
the variance (the normal subspace); a sequence's score is its squared prediction error (SPE),
the squared length of its residual outside that subspace.

Deviations:
- the threshold is the conformal quantile of held-out normal SPEs at `target_fpr`, not the
  Q-statistic of Jackson & Mudholkar;
- it learns from normal sequences only when labels are given (the paper fits on all);
- events outside the vocabulary are counted in one extra "unknown" column;
- smoothed IDF, log((1 + N) / (1 + df)) + 1 (scikit-learn's), so that an event present in
  every training sequence keeps a weight and a sequence missing it still stands out.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.decomposition import PCA as _SklearnPCA

from oddity.core.checks import check_fraction
from oddity.core.registry import register
from oddity.logs.detector import LogDetector, event_counts
from oddity.logs.results import LogSequences


@register("pca_logs")
class PCALogs(LogDetector):
    """PCA of event-count vectors (Xu et al. 2009): residual energy outside the normal subspace.

    Parameters
    ----------
    variance : float
        Share of the variance the normal subspace keeps, in (0, 1).
    idf : bool
        Weight counts by inverse document frequency.
    **kwargs
        `LogDetector` parameters (target_fpr, calibration_fraction, seed).

    Attributes
    ----------
    idf_ : numpy.ndarray
        Weight of each event column: its inverse document frequency over the training
        sequences, or ones when `idf` is False.
    mean_ : numpy.ndarray
        Mean weighted event-count vector of the training sequences.
    components_ : numpy.ndarray
        Principal axes spanning the normal subspace, one per row (none when the counts do not
        vary).

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
    >>> detector = oddity.create("pca_logs").fit(train, verbose=False)
    >>> probe = LogSequences(ids=["ok", "failed"], events=[session(False), session(True)])
    >>> detector.predict(probe).labels.tolist(), detector.threshold_.method
    ([False, True], 'conformal')
    """

    def __init__(self, *, variance: float = 0.95, idf: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.variance = variance
        self.idf = idf

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_fraction("variance", self.variance)

    def _fit_codes(self, codes, labels, sequences, verbose) -> None:
        counts = event_counts(codes, self.n_codes)
        documents = (counts > 0).sum(0)
        self.idf_ = (np.log((1 + len(counts)) / (1 + documents)) + 1 if self.idf
                     else np.ones(counts.shape[1]))
        weighted = counts * self.idf_
        self.mean_ = weighted.mean(0)
        centred = weighted - self.mean_
        if np.allclose(centred, 0):
            self.components_ = np.zeros((0, counts.shape[1]))
            return
        pca = _SklearnPCA(n_components=self.variance, svd_solver="full", random_state=self.seed)
        pca.fit(centred)
        self.components_ = pca.components_

    def _score_codes(self, codes, sequences: LogSequences):
        centred = event_counts(codes, self.n_codes) * self.idf_ - self.mean_
        residual = centred - (centred @ self.components_.T) @ self.components_
        return (residual ** 2).sum(1), None

    def _get_state(self):
        values, arrays = super()._get_state()
        return values, {**arrays, "idf_": self.idf_, "mean_": self.mean_, "components_": self.components_}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.idf_, self.mean_, self.components_ = arrays["idf_"], arrays["mean_"], arrays["components_"]
