"""APE: anomaly detection on heterogeneous categorical events with entity embeddings.

Paper: T. Chen, L.-A. Tang, Y. Sun, Z. Chen, K. Zhang, "Entity Embedding-Based Anomaly
Detection for Heterogeneous Categorical Events", IJCAI 2016, https://www.ijcai.org/Proceedings/16/Papers/244.pdf

Method: an event is a tuple of entities of different types (user, host, process, component,
template, hour, ...). Every entity has an embedding vector in one shared space; the
compatibility of an event is the weighted sum of the dot products of all its entity pairs,
one learned weight per pair of types, and the event's likelihood grows with it. Training
contrasts observed events with noise events made by replacing one entity with another of the
same type drawn from that type's frequencies. A low compatibility marks an anomalous event,
and the entity pairs that contributed least explain why.

Deviations:
- trained with negative sampling (logistic loss on observed vs perturbed events), the
  simplification of noise-contrastive estimation that drops the noise log-probability term;
- values never seen in training share one "unknown" entity per type, which appears only in
  noise events (a share `unknown_noise` of the noise draws), so that it learns to be
  incompatible and an unseen value lowers the compatibility;
- the threshold is the conformal quantile of held-out normal events at `target_fpr`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.checks import check_fraction, check_seed
from oddity.core.detector import Detector
from oddity.core.errors import DataError
from oddity.core.registry import register
from oddity.core.thresholds import calibrate_threshold
from oddity.core.torch_state import load_module_arrays, module_arrays


@dataclass
class EventPrediction:
    """Scores (higher = more anomalous), labels (score above `threshold`) of categorical events."""

    scores: np.ndarray
    labels: np.ndarray
    threshold: float


class PairwiseEntityModel(nn.Module):
    """Compatibility of events: sum over type pairs (i < j) of w_ij * <v_i, v_j>."""

    def __init__(self, n_entities: int, n_types: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(n_entities, dim)
        nn.init.normal_(self.embed.weight, std=0.1)
        self.pair_weights = nn.Parameter(torch.ones(n_types, n_types))

    def contributions(self, entities: torch.Tensor) -> torch.Tensor:
        """(B, T) entity indices -> (B, P) contributions of the P = T(T-1)/2 type pairs.

        Parameters
        ----------
        entities : torch.Tensor
            (B, T) entity indices.

        Returns
        -------
        torch.Tensor
            (B, P) contributions.
        """
        vectors = self.embed(entities)
        i, j = torch.triu_indices(entities.shape[1], entities.shape[1], offset=1)
        return self.pair_weights[i, j] * (vectors[:, i] * vectors[:, j]).sum(-1)

    def forward(self, entities: torch.Tensor) -> torch.Tensor:
        """Compatibility of each event.

        Parameters
        ----------
        entities : torch.Tensor
            (B, T) entity indices.

        Returns
        -------
        torch.Tensor
            (B,) compatibility (sum of the pair contributions).
        """
        return self.contributions(entities).sum(1)


def train_entity_model(x: torch.Tensor, sizes: list[int], *, dim: int, epochs: int, batch_size: int, lr: float,
                       negatives: int, unknown_noise: float, seed: int, verbose: bool = False,
                       desc: str = "entity embeddings") -> PairwiseEntityModel:
    """Learn entity embeddings from observed events with negative sampling.

    Noise events replace one entity (a type chosen uniformly) of an observed event with one of
    the same type drawn from that type's frequencies, the type's "unknown" entity (index 0 of
    the type) taking a share `unknown_noise` of the draws.

    Parameters
    ----------
    x : torch.Tensor
        (N, T) int64 entity indices of the observed events, type k's entities numbered from
        ``sum(sizes[:k])`` with its "unknown" entity first.
    sizes : list of int
        Entities per type, "unknown" included.
    dim, epochs, batch_size, lr, negatives, unknown_noise, seed
        As in `APE`.
    verbose : bool, default False
        Show a progress bar.
    desc : str
        Label of the progress bar.

    Returns
    -------
    PairwiseEntityModel
        The trained model, in eval mode.
    """
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = PairwiseEntityModel(int(sum(sizes)), len(sizes), dim)
    frequencies = []
    for k in range(len(sizes)):
        counts = torch.bincount(x[:, k] - int(offsets[k]), minlength=sizes[k]).double()
        counts = counts / counts.sum() * (1.0 - unknown_noise)
        counts[0] = unknown_noise
        frequencies.append(counts.float())
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.functional.logsigmoid
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=not verbose, leave=False):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = x[order[start:start + batch_size]]
            noise = batch.repeat(negatives, 1)
            column = torch.randint(len(sizes), (len(noise),), generator=generator)
            for k in range(len(sizes)):
                rows = torch.nonzero(column == k)[:, 0]
                drawn = torch.multinomial(frequencies[k], len(rows), replacement=True, generator=generator)
                noise[rows, k] = drawn + int(offsets[k])
            loss = -(loss_fn(model(batch)).mean() + loss_fn(-model(noise)).mean())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    return model


@register("ape")
class APE(Detector):
    """APE (Chen et al., IJCAI 2016): entity embeddings, pairwise compatibility of an event.

    Parameters
    ----------
    dim : int
        Size of the entity embeddings.
    epochs : int
        Passes over the training events.
    batch_size : int
        Events per optimisation step.
    lr : float
        Adam learning rate.
    negatives : int
        Noise events per observed event.
    unknown_noise : float
        Share of the noise draws that take the "unknown" entity of their type.
    target_fpr : float
        False-positive rate the threshold is calibrated for.
    calibration_fraction : float
        Share of the events (the last ones) held out to calibrate the threshold.
    seed : int
        Random seed.

    Attributes
    ----------
    columns_ : list of str
        The entity types (columns) seen by `fit`, in order.
    entities_ : list of list of str
        The entities of each type seen in training, each list led by ``"<unknown>"``.
    offsets_ : numpy.ndarray
        Index of each type's first entity in the shared embedding table.
    model_ : torch.nn.Module
        The trained entity embeddings and pairwise weights.
    threshold_ : Threshold
        Threshold on the event score, calibrated on the held-out last events.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import oddity
    >>> users = np.random.default_rng(0).integers(0, 6, 300)
    >>> events = pd.DataFrame({"user": [f"u{u}" for u in users],
    ...                        "host": [f"h{u % 3}" for u in users]})    # each user on one host
    >>> detector = oddity.create("ape", epochs=8).fit(events, verbose=False)
    >>> probe = pd.DataFrame({"user": ["u1", "u1"], "host": ["h1", "h2"]})
    >>> detector.predict(probe).labels.tolist()
    [False, True]
    """

    modality: ClassVar[str] = "logs"  # categorical events: tables of entities, same package

    def __init__(self, *, dim: int = 16, epochs: int = 20, batch_size: int = 256, lr: float = 0.01,
                 negatives: int = 3, unknown_noise: float = 0.05, target_fpr: float = 0.01, calibration_fraction: float = 0.2,
                 seed: int = 0):
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.negatives = negatives
        self.unknown_noise = unknown_noise
        self.target_fpr = target_fpr
        self.calibration_fraction = calibration_fraction
        self.seed = seed

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_fraction("target_fpr", self.target_fpr)
        check_fraction("calibration_fraction", self.calibration_fraction)
        check_seed(self.seed)

    def _indices(self, events: pd.DataFrame) -> torch.Tensor:
        """(N, T) entity indices; an unseen value maps to its type's 'unknown' entity."""
        missing = [c for c in self.columns_ if c not in events.columns]
        if missing:
            raise DataError(f"events lack the entity columns {missing} the model was fitted on")
        out = np.empty((len(events), len(self.columns_)), dtype=np.int64)
        for k, column in enumerate(self.columns_):
            index = {v: i for i, v in enumerate(self.entities_[k])}
            offset = self.offsets_[k]
            out[:, k] = [offset + index.get(v, 0) for v in events[column].astype(str)]
        return torch.from_numpy(out)

    def fit(self, events: pd.DataFrame, *, verbose: bool = True) -> "APE":
        """Learn entity embeddings from `events` (rows in time order, one column per entity
        type, mostly normal); calibrate the threshold on the last `calibration_fraction`.

        Parameters
        ----------
        events : pandas.DataFrame
            One row per event, one column per entity type (values read as strings).
        verbose : bool, default True
            Show a progress bar while training.

        Returns
        -------
        APE
            self

        Raises
        ------
        DataError
            Fewer than two entity columns or too few events.
        ConfigError
            If a hyper-parameter is invalid.
        """
        self.validate_params()
        if events.shape[1] < 2:
            raise DataError(f"APE needs at least two entity columns; got {list(events.columns)}")
        cut = len(events) - round(len(events) * self.calibration_fraction)
        if cut < 10 or len(events) - cut < 10:
            raise DataError(f"{len(events)} events are too few to fit and calibrate APE (need 50 or more)")
        train = events.iloc[:cut].astype(str)
        self.columns_ = [str(c) for c in events.columns]
        self.entities_ = [["<unknown>"] + sorted(train[c].unique()) for c in events.columns]
        sizes = [len(e) for e in self.entities_]
        self.offsets_ = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.model_ = train_entity_model(self._indices(train), sizes, dim=self.dim, epochs=self.epochs,
                                         batch_size=self.batch_size, lr=self.lr, negatives=self.negatives,
                                         unknown_noise=self.unknown_noise, seed=self.seed, verbose=verbose,
                                         desc=f"train {self.name}")
        self.threshold_ = calibrate_threshold(self.score(events.iloc[cut:]), self.target_fpr)
        return self

    def score(self, events: pd.DataFrame) -> np.ndarray:
        """Anomaly score per event: minus its compatibility.

        Parameters
        ----------
        events : pandas.DataFrame
            One row per event with the entity columns the model was fitted on.

        Returns
        -------
        numpy.ndarray
            (N,) float64 scores, higher = more anomalous.

        Raises
        ------
        DataError
            If an entity column the model was fitted on is missing.
        """
        with torch.inference_mode():
            return -self.model_(self._indices(events)).double().numpy()

    def predict(self, events: pd.DataFrame) -> EventPrediction:
        """Scores plus labels (score above the calibrated threshold).

        Parameters
        ----------
        events : pandas.DataFrame
            One row per event with the entity columns the model was fitted on.

        Returns
        -------
        EventPrediction
            Scores, labels and the threshold.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        scores = self.score(events)
        return EventPrediction(scores=scores, labels=scores > self.threshold_.value,
                               threshold=self.threshold_.value)

    def explain(self, events: pd.DataFrame, top: int = 3) -> list[list[tuple[str, str, str, str, float]]]:
        """For each event, the `top` entity pairs with the lowest contribution to its
        compatibility, least compatible first.

        Parameters
        ----------
        events : pandas.DataFrame
            One row per event with the entity columns the model was fitted on.
        top : int, default 3
            Pairs per event.

        Returns
        -------
        list of list of tuple
            Per event, (type, value, type, value, contribution) tuples.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        pairs = [(a, b) for a in range(len(self.columns_)) for b in range(a + 1, len(self.columns_))]
        with torch.inference_mode():
            contributions = self.model_.contributions(self._indices(events)).numpy()
        values = events[self.columns_].astype(str).to_numpy()
        out = []
        for row, c in zip(values, contributions):
            order = np.argsort(c)[:top]
            out.append([(self.columns_[pairs[p][0]], row[pairs[p][0]], self.columns_[pairs[p][1]],
                         row[pairs[p][1]], float(c[p])) for p in order])
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return ({"columns_": self.columns_, "entities_": self.entities_},
                {**module_arrays({"model": self.model_}), "offsets_": self.offsets_})

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.columns_ = list(values["columns_"])
        self.entities_ = [list(e) for e in values["entities_"]]
        self.offsets_ = np.asarray(arrays["offsets_"], dtype=np.int64)
        self.model_ = PairwiseEntityModel(sum(len(e) for e in self.entities_), len(self.columns_), self.dim)
        load_module_arrays({"model": self.model_}, arrays, self.name)
        self.model_.eval()
