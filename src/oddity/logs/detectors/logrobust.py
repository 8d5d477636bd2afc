"""LogRobust-style supervised detector: an attention-based Bi-LSTM over the semantic vectors
of the events.

Paper: X. Zhang, Y. Xu, Q. Lin, B. Qiao, H. Zhang, Y. Dang, C. Xie, X. Yang, Q. Cheng, Z. Li,
J. Chen, X. He, R. Yao, J.-G. Lou, M. Chintalapati, F. Shen, D. Zhang, "Robust Log-Based
Anomaly Detection on Unstable Log Data", ESEC/FSE 2019, https://doi.org/10.1145/3338906.3338931

Method: every event is replaced by a fixed semantic vector of its template text, so that a
template changed by a software update still lands near its old meaning; a bidirectional LSTM
reads the sequence, an attention layer weighs its time steps, and a classifier trained on
labelled normal and anomalous sequences gives the probability that the sequence is anomalous.

Deviations:
- semantic vectors are all-MiniLM-L6-v2 sentence embeddings (`oddity.logs.embeddings`) of the
  template's words, not FastText word vectors weighted by TF-IDF;
- the score is the classifier's logit; the threshold is the conformal quantile of held-out
  normal sequences at `target_fpr` (not 0.5); the attention weights name the culprit event;
- repeated (sequence, label) pairs are trained once with their count as weight; sequences
  longer than `max_length` events keep their first `max_length`.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.registry import register
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.logs.detector import LogDetector
from oddity.logs.embeddings import embed_templates
from oddity.logs.results import LogSequences


class AttentionBiLSTM(nn.Module):
    """(B, L, D) event vectors and a (B, L) mask -> (logit (B,), attention (B, L))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Anomaly logit of each sequence and its attention weights.

        Parameters
        ----------
        x : torch.Tensor
            (B, T, d) template vectors.
        mask : torch.Tensor
            (B, T) bool, True at real (not padded) events.

        Returns
        -------
        tuple of torch.Tensor
            (logits (B,), weights (B, T)).
        """
        out, _ = self.lstm(x)
        weights = self.attention(out)[..., 0].masked_fill(~mask, float("-inf")).softmax(dim=1)
        pooled = (weights[..., None] * out).sum(1)
        return self.head(pooled)[:, 0], weights


@register("logrobust")
class LogRobust(LogDetector):
    """LogRobust-style attention Bi-LSTM on template embeddings (supervised; needs labels).

    Parameters
    ----------
    hidden : int
        LSTM units per direction.
    epochs : int
        Passes over the distinct training sequences.
    batch_size : int
        Sequences per optimisation step.
    lr : float
        Adam learning rate.
    max_length : int
        Events kept per sequence.
    **kwargs
        `LogDetector` parameters (target_fpr, calibration_fraction, seed).

    Attributes
    ----------
    embeddings_ : numpy.ndarray
        Sentence embedding of each vocabulary template, one per row (`oddity.logs.embeddings`).
    network_ : torch.nn.Module
        The trained attention-based bidirectional LSTM classifier.

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
    >>> detector = oddity.create("logrobust", epochs=20, hidden=16).fit(train, verbose=False)
    >>> probe = LogSequences(ids=["ok", "failed"], events=[session(False), session(True)])
    >>> detector.predict(probe).labels.tolist(), detector.threshold_.method
    ([False, True], 'conformal')
    """

    supervised: ClassVar[bool] = True

    def __init__(self, *, hidden: int = 64, epochs: int = 20, batch_size: int = 32, lr: float = 2e-3,
                 max_length: int = 256, **kwargs: Any):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_length = max_length

    def _vectors(self, sequences: LogSequences) -> list[torch.Tensor]:
        """Each sequence as a (length, 384) tensor; templates outside the vocabulary are
        embedded from their text on the fly."""
        assert self.vocabulary_ is not None
        rows = {t: i for i, t in enumerate(self.vocabulary_)}
        new = sorted({t for events in sequences.events for t in events[:self.max_length]} - set(rows))
        table = self.embeddings_
        if new:
            table = np.concatenate([table, embed_templates(new)])
            rows.update({t: len(self.vocabulary_) + i for i, t in enumerate(new)})
        table_t = torch.from_numpy(table)
        return [table_t[[rows[t] for t in events[:self.max_length]]] for events in sequences.events]

    def _batch(self, vectors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(1, max(len(v) for v in vectors))
        x = torch.zeros(len(vectors), length, self.embeddings_.shape[1])
        mask = torch.zeros(len(vectors), length, dtype=torch.bool)
        for i, v in enumerate(vectors):
            x[i, :len(v)] = v
            mask[i, :max(1, len(v))] = True
        return x, mask

    def _fit_codes(self, codes, labels, sequences: LogSequences, verbose: bool) -> None:
        torch.manual_seed(self.seed)
        self.embeddings_ = embed_templates(list(self.vocabulary_ or []))
        distinct: dict[tuple, list] = {}
        for events, label in zip(sequences.events, labels):
            key = (tuple(events[:self.max_length]), int(label))
            distinct.setdefault(key, [0])[0] += 1
        keys = list(distinct)
        vectors = self._vectors(LogSequences(ids=[""] * len(keys), events=[list(k[0]) for k in keys]))
        y = torch.tensor([k[1] for k in keys], dtype=torch.float32)
        counts = torch.tensor([distinct[k][0] for k in keys], dtype=torch.float32)
        positive = float((counts * y).sum())
        negative = float((counts * (1 - y)).sum())
        weights = counts * torch.where(y > 0, negative / max(positive, 1.0), 1.0)
        weights = weights / weights.mean()
        self.network_ = AttentionBiLSTM(self.embeddings_.shape[1], self.hidden)
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=self.lr)
        loss_fn = nn.BCEWithLogitsLoss(reduction="none")
        generator = torch.Generator().manual_seed(self.seed)
        self.network_.train()
        for _ in tqdm(range(self.epochs), desc=f"train {self.name}", unit="epoch", disable=not verbose, leave=False):
            order = torch.randperm(len(keys), generator=generator).tolist()
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                x, mask = self._batch([vectors[i] for i in batch])
                logits, _ = self.network_(x, mask)
                loss = (loss_fn(logits, y[batch]) * weights[batch]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.network_.eval()

    def _score_codes(self, codes, sequences: LogSequences):
        vectors = self._vectors(sequences)
        scores = np.zeros(len(vectors))
        event_scores = []
        with torch.inference_mode():
            for start in range(0, len(vectors), 256):
                x, mask = self._batch(vectors[start:start + 256])
                logits, weights = self.network_(x, mask)
                scores[start:start + len(logits)] = logits.double().numpy()
                event_scores += [w[:len(v)].double().numpy() for w, v in zip(weights, vectors[start:start + 256])]
        return scores, event_scores

    def _get_state(self):
        values, arrays = super()._get_state()
        return values, {**arrays, "embeddings_": self.embeddings_,
                        **module_arrays({"network": self.network_})}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.embeddings_ = np.asarray(arrays["embeddings_"], dtype=np.float32)
        self.network_ = AttentionBiLSTM(self.embeddings_.shape[1], self.hidden)
        load_module_arrays({"network": self.network_}, arrays, self.name)
        self.network_.eval()
