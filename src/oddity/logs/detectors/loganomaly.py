"""LogAnomaly-style detector: next-event prediction from the meaning and the counts of the
recent events.

Paper: W. Meng, Y. Liu, Y. Zhu, S. Zhang, D. Pei, Y. Liu, Y. Chen, R. Zhang, S. Tao, P. Sun,
R. Zhou, "LogAnomaly: Unsupervised Detection of Sequential and Quantitative Anomalies in
Unstructured Logs", IJCAI 2019, https://doi.org/10.24963/ijcai.2019/658

Method: each template is represented by a semantic vector (template2vec); an LSTM reads the
vectors of the last `history` events (sequential pattern) and a second branch reads how often
each template occurred in that window (quantitative pattern); together they predict the next
event, and an event outside the top predictions is anomalous, as in DeepLog. A template never
seen in training is matched to the known template with the closest vector when it is close
enough, so a reworded message is not an anomaly by itself.

Deviations:
- semantic vectors are all-MiniLM-L6-v2 sentence embeddings (`oddity.logs.embeddings`), not
  template2vec built from synonyms and antonyms;
- the count vector goes through a small dense layer, not a second LSTM over count vectors;
- scores, the start/end codes and the calibrated top-g threshold are DeepLog's
  (`oddity.logs.detectors.deeplog`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.logs.detector import FIRST, UNKNOWN
from oddity.logs.detectors.deeplog import DeepLog
from oddity.logs.embeddings import embed_templates
from oddity.logs.results import LogSequences

SPECIAL = 4  # PAD, UNKNOWN, START, END: each gets its own indicator dimension


class SemanticCountLSTM(nn.Module):
    """Frozen semantic vectors -> LSTM, plus the window's template counts -> dense; logits."""

    def __init__(self, table: torch.Tensor, hidden: int, layers: int):
        super().__init__()
        self.register_buffer("table", table)
        n_codes = table.shape[0]
        self.lstm = nn.LSTM(table.shape[1], hidden, num_layers=layers, batch_first=True)
        self.counts = nn.Sequential(nn.Linear(n_codes, hidden), nn.ReLU())
        self.head = nn.Linear(2 * hidden, n_codes)

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """Logits of the next event from template vectors and event counts.

        Parameters
        ----------
        histories : torch.Tensor
            (B, history) event codes.

        Returns
        -------
        torch.Tensor
            (B, codes) logits.
        """
        out, _ = self.lstm(self.table[histories])
        counts = F.one_hot(histories, self.table.shape[0]).float().sum(1)
        return self.head(torch.cat([out[:, -1], self.counts(counts)], dim=1))


@register("loganomaly")
class LogAnomaly(DeepLog):
    """LogAnomaly-style (Meng et al., IJCAI 2019): semantic and count patterns, next-event rank.

    Parameters
    ----------
    match_similarity : float
        Cosine similarity above which a template unseen in training counts as the closest
        known one; below it, it is an unknown event.
    **kwargs
        `DeepLog` parameters (history, hidden, layers, epochs, batch_size, lr, end_event) and
        `LogDetector` parameters.

    Attributes
    ----------
    embeddings_ : numpy.ndarray
        Sentence embedding of each vocabulary template, one per row (`oddity.logs.embeddings`).
    network_ : torch.nn.Module
        The trained next-event LSTM over semantic and count vectors.

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
    >>> detector = oddity.create("loganomaly", epochs=8, hidden=32).fit(train, verbose=False)
    >>> probe = LogSequences(ids=["ok", "failed"], events=[session(False), session(True)])
    >>> detector.predict(probe).labels.tolist(), detector.threshold_.method
    ([False, True], 'conformal')
    """

    def __init__(self, *, match_similarity: float = 0.9, **kwargs: Any):
        super().__init__(**kwargs)
        self.match_similarity = match_similarity

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        if not -1.0 <= self.match_similarity <= 1.0:
            raise ConfigError(f"match_similarity must lie in [-1, 1], got {self.match_similarity}")

    def _table(self) -> torch.Tensor:
        """Vectors of all codes: PAD, UNKNOWN, templates, START, END."""
        dim = self.embeddings_.shape[1]
        table = np.zeros((self.n_codes + 2, dim + SPECIAL), dtype=np.float32)
        table[FIRST:self.n_codes, :dim] = self.embeddings_
        for k, code in enumerate((0, UNKNOWN, self.n_codes, self.n_codes + 1)):
            table[code, dim + k] = 1.0
        return torch.from_numpy(table)

    def _network(self) -> nn.Module:
        return SemanticCountLSTM(self._table(), self.hidden, self.layers)

    def encode(self, sequences: LogSequences) -> list[np.ndarray]:
        """Event codes; a template outside the vocabulary takes the code of the closest known
        template when their similarity reaches `match_similarity`, else `UNKNOWN`.

        Parameters
        ----------
        sequences : LogSequences
            Sessions or windows of events (templates).

        Returns
        -------
        list of numpy.ndarray
            One int64 array of codes per sequence.
        """
        codes = super().encode(sequences)
        embeddings = getattr(self, "embeddings_", None)
        unknown = sorted({t for events, c in zip(sequences.events, codes)
                          for t, k in zip(events, c) if k == UNKNOWN})
        if embeddings is None or not unknown:
            return codes
        similarity = embed_templates(unknown) @ embeddings.T
        nearest = {t: (FIRST + int(similarity[i].argmax()) if similarity[i].max() >= self.match_similarity
                       else UNKNOWN) for i, t in enumerate(unknown)}
        for events, c in zip(sequences.events, codes):
            for position in np.flatnonzero(c == UNKNOWN):
                c[position] = nearest[events[position]]
        return codes

    def _fit_codes(self, codes, labels, sequences, verbose) -> None:
        self.embeddings_ = embed_templates(list(self.vocabulary_ or []))
        super()._fit_codes(codes, labels, sequences, verbose)

    def _get_state(self):
        values, arrays = super()._get_state()
        return values, {**arrays, "embeddings_": self.embeddings_}

    def _set_state(self, values, arrays) -> None:
        self.embeddings_ = np.asarray(arrays["embeddings_"], dtype=np.float32)
        super()._set_state(values, arrays)
