"""Isolation Forest on sliding windows: a window that random axis-parallel cuts isolate in few
steps is unusual; each time step gets the score of the window ending at it (`causal=False`:
the mean score of the windows covering it).

Method: F. T. Liu, K. M. Ting and Z.-H. Zhou, "Isolation Forest", IEEE ICDM 2008,
https://doi.org/10.1109/ICDM.2008.17 (scikit-learn's `IsolationForest` grows the trees),
applied to windows of a series as in the time-series benchmarks that use it as a baseline
(e.g. Schmidl, Wenig and Papenbrock, "Anomaly Detection in Time Series: A Comprehensive
Evaluation", VLDB 2022, https://doi.org/10.14778/3538598.3538602).

Choices:
- Channels are standardised with robust statistics of the fitted history
  (`oddity.series.scaling`); a window is the flat vector of its `window` x C values.
- Persistence without pickle: after fitting, the trees are exported to flat arrays (children,
  split feature, split value, and for leaves the path length depth + c(leaf size)), and
  scoring walks those arrays (`oddity.series.trees`: a loop compiled by numba, one row at a
  time, so a streamed row scores as in the whole series) with the paper's score
  2^(-E[h(x)] / c(max_samples)).
  It equals scikit-learn's `-score_samples` (checked in the tests) and needs no sklearn
  object after fit.
- Every step is covered by windows (no fill needed): steps near the ends are covered by
  fewer windows.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.series.detector import SeriesDetector
from oddity.series.scaling import robust_scaling, standardise
from oddity.series.trees import FlatTrees, splits_at_or_below
from oddity.series.windows import sliding_windows, window_scores_to_steps


def average_path_length(sizes: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful binary-search-tree search among n items
    (Liu et al. 2008, eq. 1), with c(0) = c(1) = 0 and c(2) = 1.

    Parameters
    ----------
    sizes : numpy.ndarray
        Numbers of items n.

    Returns
    -------
    numpy.ndarray
        c(n) for each.
    """
    n = np.asarray(sizes, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    value = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, value))


def export_forest(forest: IsolationForest) -> dict[str, np.ndarray]:
    """The fitted trees as padded (n_trees, max_nodes) arrays: left/right child (-1 at leaves),
    split feature (in the input's columns), split value, and leaf path length.

    Parameters
    ----------
    forest : sklearn.ensemble.IsolationForest
        A fitted forest.

    Returns
    -------
    dict of str to numpy.ndarray
        The tree arrays by name.
    """
    trees = [(tree.tree_, features) for tree, features in
             zip(forest.estimators_, forest.estimators_features_)]
    width = max(t.node_count for t, _ in trees)
    arrays = {"left": np.full((len(trees), width), -1, np.int32),
              "right": np.full((len(trees), width), -1, np.int32),
              "feature": np.zeros((len(trees), width), np.int32),
              "split": np.zeros((len(trees), width), np.float64),
              "leaf_length": np.zeros((len(trees), width), np.float64)}
    for i, (tree, features) in enumerate(trees):
        n = tree.node_count
        depth = np.zeros(n)
        for node in range(n):  # children always have larger ids than their parent
            for child in (tree.children_left[node], tree.children_right[node]):
                if child != -1:
                    depth[child] = depth[node] + 1
        arrays["left"][i, :n] = tree.children_left
        arrays["right"][i, :n] = tree.children_right
        arrays["feature"][i, :n] = np.asarray(features)[np.maximum(tree.feature, 0)]
        arrays["split"][i, :n] = tree.threshold
        arrays["leaf_length"][i, :n] = depth + average_path_length(tree.n_node_samples)
    return arrays


def flat_forest(forest: dict[str, np.ndarray], max_samples: int) -> FlatTrees:
    """The trees of `export_forest` laid out for `oddity.series.trees` (splits rounded down
    to float32, which decides as scikit-learn does), each leaf's value its path length over
    -(n_trees * c(max_samples)), so that a row's sum is the exponent of its score.

    Parameters
    ----------
    forest : dict of str to numpy.ndarray
        Trees exported by `export_forest`.
    max_samples : int
        Sub-sample size each tree was grown on (for the normalisation c).

    Returns
    -------
    FlatTrees
        The walkable trees.
    """
    scale = len(forest["left"]) * path_normaliser(max_samples)
    return FlatTrees(forest["left"], forest["right"], forest["feature"],
                     splits_at_or_below(forest["split"]), -forest["leaf_length"] / scale)


def isolation_scores(trees: FlatTrees, samples: np.ndarray) -> np.ndarray:
    """Isolation score 2^(-E[h(x)] / c(max_samples)) in (0, 1] of each row of `samples`
    (higher = more anomalous), each row's computed alone.

    Parameters
    ----------
    trees : FlatTrees
        `flat_forest` of the forest.
    samples : numpy.ndarray
        (n, d) rows.

    Returns
    -------
    numpy.ndarray
        (n,) scores.
    """
    return np.exp2(trees.sums(samples))


@functools.lru_cache(maxsize=8)
def path_normaliser(max_samples: int) -> float:
    """c(max_samples), the path length isolation scores are normalised by.

    Parameters
    ----------
    max_samples : int
        Sub-sample size each tree was grown on.

    Returns
    -------
    float
        `average_path_length` of it.
    """
    return float(average_path_length(np.array([max_samples]))[0])


def forest_scores(forest: dict[str, np.ndarray], samples: np.ndarray,
                  max_samples: int) -> np.ndarray:
    """Isolation score in (0, 1] of each row of `samples` (`isolation_scores`).

    Parameters
    ----------
    forest : dict of str to numpy.ndarray
        Trees exported by `export_forest`.
    samples : numpy.ndarray
        (n, d) rows.
    max_samples : int
        Sub-sample size each tree was grown on (for the normalisation c).

    Returns
    -------
    numpy.ndarray
        (n,) scores.
    """
    return isolation_scores(flat_forest(forest, max_samples), samples)


@register("window_iforest")
class WindowIsolationForest(SeriesDetector):
    """Isolation Forest over sliding windows of `window` steps (all channels together).

    Parameters
    ----------
    window : int, default 32
        Window length in steps.
    n_estimators : int, default 100
        Number of trees.
    max_samples : int, default 256
        Windows drawn to grow each tree.
    **base
        Parameters shared by every series detector (`SeriesDetector`).

    Attributes
    ----------
    forest_ : dict of numpy.ndarray
        The trees as flat arrays.
    max_samples_ : int
        Windows actually drawn per tree.
    centre_, scale_ : numpy.ndarray
        Robust per-channel scaling of the fit history.

    See Also
    --------
    docs/methods/window_iforest.md : method and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import oddity
    >>> rng, steps = np.random.default_rng(0), np.arange(600)
    >>> data = pd.DataFrame({"cpu": np.sin(steps / 10) + 0.05 * rng.normal(size=600),
    ...                      "mem": np.cos(steps / 10) + 0.05 * rng.normal(size=600)},
    ...                     index=pd.date_range("2024-01-01", periods=600, freq="min"))
    >>> detector = oddity.create("window_iforest", window=8, n_estimators=20).fit(data.iloc[:400], verbose=False)
    >>> test = data.iloc[400:].copy()
    >>> test.iloc[100, 0] += 3.0                               # a spike on cpu
    >>> result = detector.predict(test)
    >>> bool(result.labels[100]), detector.threshold_.method
    (True, 'conformal')
    """

    centre_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    forest_: dict[str, np.ndarray] | None = None
    max_samples_: int | None = None
    _trees: FlatTrees | None = None  # forest_ laid out for scoring

    def __init__(self, *, window: int = 32, n_estimators: int = 100, max_samples: int = 256,
                 **base: Any):
        super().__init__(**base)
        self.window = window
        self.n_estimators = n_estimators
        self.max_samples = max_samples

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if self.window < 1:
            raise ConfigError(f"window must be at least 1 step, got {self.window}")
        if self.n_estimators < 1 or self.max_samples < 2:
            raise ConfigError("n_estimators must be >= 1 and max_samples >= 2, got "
                              f"{self.n_estimators} and {self.max_samples}")

    @property
    def min_length(self) -> int:
        return self.window

    def _windows(self, values: np.ndarray) -> np.ndarray:
        assert self.centre_ is not None and self.scale_ is not None
        windows = sliding_windows(standardise(values, self.centre_, self.scale_), self.window)
        return windows.reshape(len(windows), -1)

    def _fit_series(self, values: np.ndarray, verbose: bool) -> None:
        self.centre_, self.scale_ = robust_scaling(values)
        windows = self._windows(values)
        forest = IsolationForest(n_estimators=self.n_estimators,
                                 max_samples=min(self.max_samples, len(windows)),
                                 random_state=self.seed).fit(windows)
        self.forest_ = export_forest(forest)
        self.max_samples_ = int(forest.max_samples_)
        self._trees = flat_forest(self.forest_, self.max_samples_)

    def _score_series(self, values: np.ndarray) -> tuple[np.ndarray, None]:
        scores = self._window_scores(self._windows(values))
        return window_scores_to_steps(scores, len(values), self.window,
                                      causal=self.causal), None

    def _window_scores(self, windows: np.ndarray) -> np.ndarray:
        assert self._trees is not None
        return isolation_scores(self._trees, windows)

    def _score_stream(self, values: np.ndarray, index: Any) -> tuple[np.ndarray, None]:
        """Streamed rows: the window ending at each (causal), from the kept `window - 1`
        rows before them; `causal=False` rescores the context (`SeriesDetector`)."""
        if not self.causal:
            return super()._score_stream(values, index)
        assert self.context_ is not None
        joined = np.concatenate((self.context_, values))
        self.context_ = joined[len(values):]
        return self._window_scores(self._windows(joined)), None

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.forest_ is not None and self.centre_ is not None and self.scale_ is not None
        forest = {f"forest.{k}": v for k, v in self.forest_.items()}
        return ({**values, "max_samples_": self.max_samples_},
                {**arrays, **forest, "centre": self.centre_, "scale": self.scale_})

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        self.max_samples_ = int(values["max_samples_"])
        self.centre_, self.scale_ = arrays["centre"], arrays["scale"]
        self.forest_ = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("forest.")}
        self._trees = flat_forest(self.forest_, self.max_samples_)
