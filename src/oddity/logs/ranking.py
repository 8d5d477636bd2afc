"""CAR: collaborative ranking of the alerts of any detector and of the alert patterns they form.

Paper: Y. Lin, Z. Chen, C. Cao, L.-A. Tang, K. Zhang, W. Cheng, Z. Li, "Collaborative Alert
Ranking for Anomaly Detection", CIKM 2018, https://dl.acm.org/doi/10.1145/3269206.3272013

Method: alerts are heterogeneous categorical records (node, component, level, template, ...)
in time order; most are false, the true ones belong to incidents that unfold in several steps
and share attributes. Temporal correlation: a prefix tree of alert-type contexts over the
alert sequence gives hierarchical Pitman-Yor predictive probabilities; an alert pattern
(context -> next type) that recurs and is more likely after its context than alone is a
temporal dependency, with a strength. Content correlation: entity embeddings learned from
the alerts' attributes (APE's pairwise model) make alerts sharing compatible attributes
neighbours. One quadratic objective couples an alert score r and a pattern score p:
smooth r over the content neighbours, pull each alert to the patterns it takes part in (and
an alert in no pattern towards zero), keep p near its temporal strength and r near the
detector's own score order; its minimum (one sparse linear solve) ranks alerts and patterns.

Deviations:
- the Pitman-Yor hierarchy uses the one-table-per-type approximation (interpolated
  Kneser-Ney) with a fixed discount and strength, not Gibbs-sampled seating;
- a pattern's temporal strength is its lift, log P(next | context) - log P(next); patterns
  with no positive lift are dropped;
- two alerts' content similarity is the cosine of their mean entity embeddings, kept for the
  `neighbours` nearest alerts;
- the combined objective is a graph-regularised co-ranking written here (the weights
  `content_weight`, `pattern_weight`, `prior_weight`, `strength_weight` are ours), solved
  as one linear system (conjugate gradients) rather than by alternating updates;
- the detector's score, when given, enters as a prior on the alert score (its percentile).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.sparse.linalg import cg
from sklearn.neighbors import NearestNeighbors

from oddity.core.checks import check_positive, check_positive_ints, check_seed
from oddity.core.errors import ConfigError, DataError
from oddity.logs.detectors.ape import train_entity_model


@dataclass
class AlertRanking:
    """Alerts and alert patterns ranked by how likely they belong to a true incident.

    Attributes
    ----------
    alerts : pandas.DataFrame
        The input alerts (original index and columns) with `car_score` (higher = more likely
        true), `car_rank` (1 = first) and `temporal` (the strength of the strongest pattern the
        alert takes part in), sorted by rank.
    patterns : pandas.DataFrame
        One row per pattern: `pattern` (alert types joined by " -> "), `length`, `support`
        (occurrences), `strength` (temporal lift), `car_score`, sorted by score.
    """

    alerts: pd.DataFrame
    patterns: pd.DataFrame

    def top(self, k: int) -> pd.DataFrame:
        """The `k` highest-ranked alerts.

        Parameters
        ----------
        k : int
            Alerts to return.

        Returns
        -------
        pandas.DataFrame
            The first `k` rows of `alerts`.
        """
        return self.alerts.head(k)


class CollaborativeAlertRanker:
    """CAR (Lin et al., CIKM 2018): rank alerts by temporal and content correlation.

    Parameters
    ----------
    kind : str
        Column holding the alert type (the symbol of the alert sequences), e.g. ``"template"``.
    entities : list of str, optional
        Attribute columns embedded for content correlation (default: every column but
        `score` and `time`; `kind` and `sequence` are among them).
    score : str, optional
        Column of the detector's anomaly score (higher = more anomalous), used as a prior.
    time : str, optional
        Column of numeric time stamps (seconds); alerts further apart than `max_gap` do not
        form a pattern. Rows are taken in the given order either way.
    sequence : str, optional
        Column splitting the alerts into separate sequences (e.g. a host); default one sequence.
    max_gap : float
        Largest time between consecutive alerts of one pattern (with `time`).
    depth : int
        Longest context of the prefix tree (patterns have up to ``depth + 1`` alerts).
    min_support : int
        Occurrences a pattern needs.
    discount, strength : float
        Pitman-Yor discount (in [0, 1)) and strength of every context.
    neighbours : int
        Content neighbours of each alert.
    content_weight, pattern_weight, prior_weight, strength_weight : float
        Weights of the four terms of the objective.
    dim, epochs : int
        Entity embedding size and training passes.
    seed : int
        Random seed of the embeddings.

    Attributes
    ----------
    None; `rank` returns everything it finds.

    Examples
    --------
    >>> from oddity.logs.ranking import CollaborativeAlertRanker
    >>> from oddity.logs.synth_alerts import synthetic_alerts
    >>> alerts, truth = synthetic_alerts(n_noise=200, n_incidents=8, seed=0)   # 29 true of 229
    >>> ranker = CollaborativeAlertRanker(kind="kind", entities=["kind", "host", "component"],
    ...                                   time="time", max_gap=600, epochs=5)
    >>> ranking = ranker.rank(alerts.assign(truth=truth))
    >>> int(ranking.top(10)["truth"].sum())
    10
    """

    def __init__(self, *, kind: str, entities: list[str] | None = None, score: str | None = None,
                 time: str | None = None, sequence: str | None = None, max_gap: float = 3600.0,
                 depth: int = 2, min_support: int = 2, discount: float = 0.5, strength: float = 1.0,
                 neighbours: int = 10, content_weight: float = 1.0, pattern_weight: float = 1.0,
                 prior_weight: float = 0.3, strength_weight: float = 1.0, dim: int = 16, epochs: int = 20,
                 seed: int = 0):
        self.kind = kind
        self.entities = entities
        self.score = score
        self.time = time
        self.sequence = sequence
        self.max_gap = max_gap
        self.depth = depth
        self.min_support = min_support
        self.discount = discount
        self.strength = strength
        self.neighbours = neighbours
        self.content_weight = content_weight
        self.pattern_weight = pattern_weight
        self.prior_weight = prior_weight
        self.strength_weight = strength_weight
        self.dim = dim
        self.epochs = epochs
        self.seed = seed

    def validate_params(self) -> None:
        """Check the parameters.

        Raises
        ------
        ConfigError
            A parameter out of its range.
        """
        check_positive_ints(depth=self.depth, min_support=self.min_support, neighbours=self.neighbours,
                            dim=self.dim, epochs=self.epochs)
        check_positive(max_gap=self.max_gap, strength=self.strength, pattern_weight=self.pattern_weight,
                       strength_weight=self.strength_weight)
        if not 0.0 <= self.discount < 1.0:
            raise ConfigError(f"discount must be in [0, 1); got {self.discount}")
        for name in ("content_weight", "prior_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0; got {value!r}")
        check_seed(self.seed)

    def _columns(self, alerts: pd.DataFrame) -> list[str]:
        """The entity columns, after checking that every named column exists."""
        named = {"kind": self.kind, "score": self.score, "time": self.time, "sequence": self.sequence}
        for role, column in named.items():
            if column is not None and column not in alerts.columns:
                raise DataError(f"alerts have no {role} column {column!r}; columns: {list(alerts.columns)}")
        entities = self.entities or [c for c in alerts.columns if c not in (self.score, self.time)]
        missing = [c for c in entities if c not in alerts.columns]
        if missing:
            raise DataError(f"alerts have no entity columns {missing}; columns: {list(alerts.columns)}")
        if len(entities) < 2:
            raise DataError(f"content correlation needs at least two entity columns; got {entities}")
        return list(entities)

    def _numbers(self, alerts: pd.DataFrame, column: str | None) -> np.ndarray | None:
        if column is None:
            return None
        values = pd.to_numeric(alerts[column], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"column {column!r} must hold numbers; row {bad[0]} holds "
                            f"{alerts[column].iloc[bad[0]]!r}")
        return values

    def _runs(self, alerts: pd.DataFrame, times: np.ndarray | None) -> list[np.ndarray]:
        """Row positions of each alert sequence, cut where consecutive alerts are > max_gap apart."""
        keys = alerts[self.sequence].astype(str).to_numpy() if self.sequence else np.zeros(len(alerts))
        runs = []
        for key in pd.unique(keys):
            rows = np.flatnonzero(keys == key)
            if times is None:
                runs.append(rows)
                continue
            gaps = np.diff(times[rows])
            if np.any(gaps < 0):
                raise DataError(f"alerts are not in time order ({self.time!r} decreases after row "
                                f"{rows[np.flatnonzero(gaps < 0)[0]]}); sort them by time")
            runs.extend(np.split(rows, np.flatnonzero(gaps > self.max_gap) + 1))
        return runs

    def temporal_patterns(self, kinds: np.ndarray, runs: list[np.ndarray]) -> tuple[pd.DataFrame, list[list[int]]]:
        """Patterns of the prefix tree and, per pattern, the rows of its occurrences.

        Parameters
        ----------
        kinds : numpy.ndarray
            Alert type of every row.
        runs : list of numpy.ndarray
            Row positions of each alert sequence, in time order.

        Returns
        -------
        patterns : pandas.DataFrame
            `pattern`, `length`, `support`, `strength` of every pattern with `min_support`
            occurrences and a positive lift.
        rows : list of list of int
            The rows taking part in each pattern's occurrences.
        """
        counts: dict[tuple, Counter] = defaultdict(Counter)   # context -> next type -> count
        where: dict[tuple, list[int]] = defaultdict(list)     # (context, next) -> rows
        for run in runs:
            symbols = kinds[run]
            for end in range(len(run)):
                counts[()][symbols[end]] += 1
                for length in range(1, min(self.depth, end) + 1):
                    context = tuple(symbols[end - length:end])
                    counts[context][symbols[end]] += 1
                    where[context + (symbols[end],)].extend(run[end - length:end + 1].tolist())
        vocabulary = len(counts[()])
        memo: dict[tuple, float] = {}

        def predictive(context: tuple, symbol: str) -> float:
            """Interpolated Pitman-Yor predictive probability (one table per type)."""
            if (context, symbol) in memo:
                return memo[context, symbol]
            parent = predictive(context[1:], symbol) if context else 1.0 / vocabulary
            table = counts.get(context, Counter())
            total, types = sum(table.values()), len(table)
            if total == 0:
                value = parent
            else:
                value = (max(table[symbol] - self.discount, 0.0) / (self.strength + total)
                         + (self.strength + self.discount * types) / (self.strength + total) * parent)
            memo[context, symbol] = value
            return value

        records, members = [], []
        for key, rows in where.items():
            context, symbol = key[:-1], key[-1]
            support = counts[context][symbol]
            if support < self.min_support:
                continue
            lift = np.log(predictive(context, symbol)) - np.log(predictive((), symbol))
            if lift <= 0:
                continue
            records.append({"pattern": " -> ".join(map(str, key)), "length": len(key), "support": support,
                            "strength": float(lift)})
            members.append(sorted(set(rows)))
        return pd.DataFrame(records, columns=["pattern", "length", "support", "strength"]), members

    def content_graph(self, alerts: pd.DataFrame, columns: list[str], verbose: bool = False) -> sparse.csr_matrix:
        """Symmetric graph of content neighbours: cosine similarity of the alerts' mean entity
        embeddings, learned from the alerts themselves.

        Parameters
        ----------
        alerts : pandas.DataFrame
            The alerts.
        columns : list of str
            Entity columns.
        verbose : bool, default False
            Show a progress bar while learning the embeddings.

        Returns
        -------
        scipy.sparse.csr_matrix
            (N, N) non-negative weights, zero diagonal.
        """
        values = alerts[columns].astype(str)
        vocabularies = [["<unknown>"] + sorted(values[c].unique()) for c in columns]
        sizes = [len(v) for v in vocabularies]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        x = np.empty((len(values), len(columns)), dtype=np.int64)
        for k, column in enumerate(columns):
            index = {v: i for i, v in enumerate(vocabularies[k])}
            x[:, k] = [offsets[k] + index[v] for v in values[column]]
        model = train_entity_model(torch.from_numpy(x), sizes, dim=self.dim, epochs=self.epochs,
                                   batch_size=256, lr=0.01, negatives=3, unknown_noise=0.0, seed=self.seed,
                                   verbose=verbose, desc="CAR entity embeddings")
        with torch.inference_mode():
            vectors = model.embed(torch.from_numpy(x)).mean(1).double().numpy()
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        k = min(self.neighbours + 1, len(vectors))
        distances, neighbours = NearestNeighbors(n_neighbors=k).fit(vectors).kneighbors(vectors)
        similarity = np.clip(1.0 - distances ** 2 / 2.0, 0.0, None)   # unit vectors: cosine
        rows = np.repeat(np.arange(len(vectors)), k)
        graph = sparse.csr_matrix((similarity.ravel(), (rows, neighbours.ravel())), shape=(len(vectors),) * 2)
        graph.setdiag(0.0)
        graph.eliminate_zeros()
        return graph.maximum(graph.T).tocsr()

    def rank(self, alerts: pd.DataFrame, *, verbose: bool = False) -> AlertRanking:
        """Rank `alerts` (rows in time order) and the patterns they form.

        Parameters
        ----------
        alerts : pandas.DataFrame
            One row per alert with the `kind` column, the entity columns and optionally the
            `score`, `time` and `sequence` columns.
        verbose : bool, default False
            Show a progress bar while learning the embeddings.

        Returns
        -------
        AlertRanking
            Alerts and patterns, best first.

        Raises
        ------
        ConfigError
            A parameter out of its range.
        DataError
            Fewer than two alerts, a named column missing, a score or time that is not a
            number, times out of order, or fewer than two entity columns.
        """
        self.validate_params()
        if not isinstance(alerts, pd.DataFrame):
            raise DataError(f"alerts must be a pandas DataFrame; got {type(alerts).__name__}")
        if len(alerts) < 2:
            raise DataError(f"ranking needs at least two alerts; got {len(alerts)}")
        columns = self._columns(alerts)
        scores, times = self._numbers(alerts, self.score), self._numbers(alerts, self.time)
        patterns, members = self.temporal_patterns(alerts[self.kind].astype(str).to_numpy(),
                                                   self._runs(alerts, times))
        n, m = len(alerts), len(patterns)
        strength = patterns["strength"].to_numpy(np.float64)
        prior_p = strength / strength.max() if m else strength
        # alert-pattern incidence, each alert's row normalised to 1; an alert in no pattern
        # is tied to a fixed pattern of score 0 (no temporal evidence)
        incidence = sparse.csr_matrix((np.ones(sum(map(len, members))),
                                       (np.concatenate(members or [np.zeros(0)]).astype(np.int64),
                                        np.repeat(np.arange(m), list(map(len, members))))), shape=(n, m))
        degree = np.asarray(incidence.sum(1)).ravel()
        incidence = sparse.diags(1.0 / np.maximum(degree, 1.0)) @ incidence
        graph = self.content_graph(alerts, columns, verbose)
        graph = graph / max(graph.sum() / n, 1e-12)            # mean degree 1
        laplacian = sparse.diags(np.asarray(graph.sum(1)).ravel()) - graph
        prior_r = (pd.Series(scores).rank(pct=True).to_numpy() if scores is not None else np.full(n, 0.5))
        a, mu, nu = self.pattern_weight, self.prior_weight, self.strength_weight
        # minimise  c r'Lr + a sum_ik B_ik (r_i - p_k)^2 + a sum_i [no pattern] r_i^2
        #           + mu |r - r0|^2 + nu |p - p0|^2:  its gradient is linear in (r, p)
        system = sparse.bmat([[self.content_weight * laplacian + sparse.identity(n) * (a + mu), -a * incidence],
                              [-a * incidence.T, sparse.diags(a * np.asarray(incidence.sum(0)).ravel() + nu)]],
                             format="csr")
        # symmetric positive definite: conjugate gradients with a Jacobi preconditioner (a
        # direct solve fills in and takes minutes at a few thousand alerts)
        solution, info = cg(system, np.concatenate([mu * prior_r, nu * prior_p]), rtol=1e-10, atol=0.0,
                            maxiter=10 * (n + m), M=sparse.diags(1.0 / system.diagonal()))
        if info != 0:
            raise DataError(f"the ranking did not converge in {info} iterations; check the weights")
        r, p = solution[:n], solution[n:]
        temporal = np.zeros(n)
        for k, rows in enumerate(members):
            temporal[rows] = np.maximum(temporal[rows], strength[k])
        ranked = alerts.assign(car_score=r, temporal=temporal)
        order = np.lexsort((np.arange(n), -r))
        ranked = ranked.iloc[order].assign(car_rank=np.arange(1, n + 1))
        patterns = patterns.assign(car_score=p).sort_values(["car_score", "support"], ascending=False,
                                                            kind="stable").reset_index(drop=True)
        return AlertRanking(alerts=ranked, patterns=patterns)
