"""DeepLog: an LSTM that predicts the next log event; an event outside its top predictions is
anomalous.

Paper: M. Du, F. Li, G. Zheng, V. Srikumar, "DeepLog: Anomaly Detection and Diagnosis from
System Logs through Deep Learning", CCS 2017, https://doi.org/10.1145/3133956.3134015

Method: a stacked LSTM reads the last `history` event ids of a sequence and gives a
probability for each event id to come next; trained on normal sequences with cross-entropy.
An event is anomalous when it is not among the `g` most likely predictions; a sequence is
anomalous when any of its events is.

Deviations:
- a sequence's score is the largest, over its events, of the event's rank among the
  predictions (0 = most likely) plus one minus its probability, so that equal ranks are
  ordered by probability; the calibrated threshold on held-out normal sequences plays the
  role of `g` (score >= g - 1 means the event fell outside the top g);
- a start code is prepended and, for sessions (`end_event`), an end code appended, so the
  first event and where a sequence stops are checked too (a session cut short is an
  anomaly); an event whose template was never seen in training has the worst rank;
- repeated (history, next event) pairs are trained once with their count as weight;
- only the key-sequence model: the parameter-value model is not implemented.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.registry import register
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.logs.detector import LogDetector
from oddity.logs.results import LogSequences
from oddity.logs.windows import next_event_pairs


class NextEventLSTM(nn.Module):
    """Embedding -> stacked LSTM -> logits over the event codes (the last two are START, END)."""

    def __init__(self, n_codes: int, embedding: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(n_codes, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_codes)

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """Logits of the next event.

        Parameters
        ----------
        histories : torch.Tensor
            (B, history) event codes.

        Returns
        -------
        torch.Tensor
            (B, codes) logits.
        """
        out, _ = self.lstm(self.embed(histories))
        return self.head(out[:, -1])


@register("deeplog")
class DeepLog(LogDetector):
    """DeepLog (Du et al., CCS 2017): LSTM next-event prediction, top-g rule as a calibrated rank.

    Parameters
    ----------
    history : int
        Events the LSTM reads before predicting the next one (the paper's h).
    hidden : int
        LSTM units per layer.
    layers : int
        Stacked LSTM layers.
    embedding : int
        Size of the learned event embedding.
    epochs : int
        Passes over the distinct training pairs.
    batch_size : int
        Pairs per optimisation step.
    lr : float
        Adam learning rate.
    end_event : bool
        Predict the end of each sequence too (right for sessions; for windows cut from a
        stream, where the end is arbitrary, set it False).
    **kwargs
        `LogDetector` parameters (target_fpr, calibration_fraction, seed).

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained next-event LSTM.

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
    >>> detector = oddity.create("deeplog", epochs=8, hidden=32, embedding=16).fit(train, verbose=False)
    >>> probe = LogSequences(ids=["ok", "failed"], events=[session(False), session(True)])
    >>> detector.predict(probe).labels.tolist(), detector.threshold_.method
    ([False, True], 'conformal')
    """

    def __init__(self, *, history: int = 10, hidden: int = 64, layers: int = 2, embedding: int = 32,
                 epochs: int = 20, batch_size: int = 256, lr: float = 2e-3, end_event: bool = True,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.history = history
        self.hidden = hidden
        self.layers = layers
        self.embedding = embedding
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.end_event = end_event

    def _network(self) -> NextEventLSTM:
        return NextEventLSTM(self.n_codes + 2, self.embedding, self.hidden, self.layers)

    def _pairs(self, codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        end = self.n_codes + 1 if self.end_event else None
        return next_event_pairs(codes, self.history, start=self.n_codes, end=end)

    def _fit_codes(self, codes, labels, sequences, verbose) -> None:
        torch.manual_seed(self.seed)
        histories, targets = self._pairs(codes)
        pairs, counts = np.unique(np.column_stack([histories, targets]), axis=0, return_counts=True)
        x = torch.from_numpy(pairs[:, :-1])
        y = torch.from_numpy(pairs[:, -1])
        weights = torch.from_numpy(counts / counts.mean()).float()
        self.network_ = self._network()
        optimiser = torch.optim.Adam(self.network_.parameters(), lr=self.lr)
        loss_fn = nn.CrossEntropyLoss(reduction="none")
        generator = torch.Generator().manual_seed(self.seed)
        self.network_.train()
        for _ in tqdm(range(self.epochs), desc=f"train {self.name}", unit="epoch", disable=not verbose, leave=False):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), self.batch_size):
                batch = order[start:start + self.batch_size]
                loss = (loss_fn(self.network_(x[batch]), y[batch]) * weights[batch]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        self.network_.eval()

    def _score_codes(self, codes, sequences: LogSequences):
        histories, targets = self._pairs(codes)
        event = np.zeros(len(targets), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(targets), 4096):
                x = torch.from_numpy(histories[start:start + 4096])
                y = torch.from_numpy(targets[start:start + 4096])
                probabilities = torch.softmax(self.network_(x), dim=1)
                true = probabilities.gather(1, y[:, None])
                rank = (probabilities > true).sum(1).double()
                event[start:start + len(y)] = (rank + 1.0 - true[:, 0].double()).numpy()
        event[targets == 1] = float(self.n_codes)  # UNKNOWN: never predicted, worst rank
        extra = int(self.end_event)
        bounds = np.cumsum([0] + [len(c) + extra for c in codes])
        per_sequence = [event[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        scores = np.array([e.max() if len(e) else 0.0 for e in per_sequence])
        # the end's score is reported on the last event
        event_scores = [np.append(e[:-2], max(e[-2:])) if extra and len(e) > 1 else e[:len(e) - extra]
                        for e in per_sequence]
        return scores, event_scores

    def _get_state(self):
        values, arrays = super()._get_state()
        return values, {**arrays, **module_arrays({"network": self.network_})}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.network_ = self._network()
        load_module_arrays({"network": self.network_}, arrays, self.name)
        self.network_.eval()
