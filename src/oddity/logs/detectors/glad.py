"""GLAD: content-aware dynamic graphs of log windows; a GNN + transformer flags anomalous edges.

Paper: Y. Li, Y. Liu, H. Wang, Z. Chen, W. Cheng, Y. Chen, W. Yu, H. Chen, C. Liu,
"GLAD: Content-aware Dynamic Graphs For Log Anomaly Detection", ICKG 2023,
https://arxiv.org/abs/2309.05953

Fields are extracted from the log messages with rules and patterns (the masks of
`oddity.logs.masking`: addresses, paths, ids, URLs, ...; ``key=value`` pairs; words named
after a user, host, port, ...), NOT with the paper's prompt-based few-shot language model.

Method: each window (or session) becomes a graph whose nodes are its templates and its
field values (typed: ADDR, PATH, ``user``, ...); edges join a template to the fields of the
same line and each template to the next one in the window (from a START node, and to an END
node when `end_event`). A graph network passes messages over the window's edges, a causal
transformer reads the window's templates in order, and from the transformer state at a line
the model scores each edge leaving it (its fields and the next template) against the target
node's embedding. Trained self-supervised on normal
windows: observed edges against negative edges whose target is replaced by a node of the
same type (negative sampling). An edge's anomaly score is minus its log-probability; a
window's is the mean of its `top_edges` worst edges, and those edges are its explanation.

Deviations:
- rule- and pattern-based field extraction instead of an LLM (see above); numbers, times
  and dates are not fields (they vary on every line);
- one graph per window with its line order kept for the transformer, instead of a sequence
  of graph snapshots;
- masked edge reconstruction: the edges of a window are split into `folds`; the edges of
  a fold are scored with messages passed over the other folds only, so an edge never
  carries its own answer;
- field values found in fewer than `min_count` training lines, or in one training window
  only (identifiers such as a block id), share one "unseen" node per type; field types
  never seen in training are dropped;
- an unseen template is the UNKNOWN node: as a target only negative edges reach it in
  training (a share `unknown_noise` of them), and as a context it is trained by reading that
  share of the training templates as UNKNOWN;
- reduced to train in minutes on two CPU cores, one line per reduction:
  - nodes start from learned 32-dimensional embeddings, not language-model text features;
  - 2 mean-aggregation message-passing layers written in torch (no torch-geometric);
  - 1 transformer layer with 2 heads over the window's templates;
  - at most `max_fields` (8) fields per line, 3 edge folds, 4 negatives per edge;
  - 30 epochs over the training windows, 32 windows per step;
- the threshold is the conformal quantile of held-out normal windows at `target_fpr`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from oddity.core.checks import check_fraction, check_positive, check_positive_ints
from oddity.core.errors import ConfigError
from oddity.core.registry import register
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.logs.detector import FIRST, PAD, UNKNOWN, LogDetector
from oddity.logs.masking import Masker
from oddity.logs.results import LogSequences

KEY_VALUE = re.compile(r"(?<![\w.\-])([A-Za-z_][\w.\-]*)=([^\s,;=()\[\]{}\"']+)")
NAMED = re.compile(r"\b(user|host|node|port|device|interface|account)"
                   r"[\s:]+([^\s,;=()\[\]{}\"']+)", re.IGNORECASE)
VARYING = frozenset({"NUM", "TIME", "DATE"})  # mask kinds that vary on every line: not fields
LINE, NEXT = 0, 1  # edge relations: template -> field of its line, template -> next template
MASKER = Masker()


def extract_fields(content: str, max_fields: int = 8) -> list[tuple[str, str]]:
    """Typed field values of one log message, by rules and patterns.

    ``key=value`` pairs give the type ``key`` (lower case); words after user, host, port, ...
    give that word as type; the masks of `oddity.logs.masking` give their kind (ADDR, PATH,
    ID, ...). Numbers, times and dates are left out. A value is kept once, with its first type.

    Parameters
    ----------
    content : str
        The message (without its header fields).
    max_fields : int, default 8
        At most this many fields, the first found.

    Returns
    -------
    list of (type, value)
        The fields in order.

    Examples
    --------
    >>> extract_fields("session opened for user root from 10.1.2.3 state=RUNNING")
    [('state', 'RUNNING'), ('user', 'root'), ('ADDR', '10.1.2.3')]
    """
    return list(_fields(content)[:max_fields])


@lru_cache(maxsize=65536)  # messages repeat (and overlapping windows share lines)
def _fields(content: str) -> tuple[tuple[str, str], ...]:
    """(type, value) pairs of a message, all of them (see `extract_fields`)."""
    fields: dict[str, str] = {}
    for regex in (KEY_VALUE, NAMED):
        for key, value in regex.findall(content):
            if value not in fields and not any(kind in VARYING for kind, _ in MASKER.values(value)):
                fields[value] = key.lower()
    for kind, value in MASKER.values(content):
        if kind not in VARYING and value not in fields:
            fields[value] = kind
    return tuple((kind, value) for value, kind in fields.items())


@dataclass
class WindowGraph:
    """One window as a graph: `nodes` global node ids (local index = position), `order` the
    local index of START and each line's template in line order, and its distinct edges:
    `source` (position in `order` the edge leaves from), `target` (local index), `relation`;
    `names` the text of each local node (template, ``type=value``, ``<start>``, ``<end>``)."""

    nodes: np.ndarray
    names: list[str]
    order: np.ndarray
    source: np.ndarray
    target: np.ndarray
    relation: np.ndarray


class EdgeModel(nn.Module):
    """Node embeddings, relation-typed mean-aggregation message passing, a causal transformer
    over the window's templates, and dot-product edge logits against output embeddings."""

    def __init__(self, n_nodes: int, n_types: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.embed = nn.Embedding(n_nodes, dim)
        self.type_embed = nn.Embedding(n_types, dim)
        self.messages = nn.ModuleList(nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(4))
                                      for _ in range(layers))
        self.selfs = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        block = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.transformer = nn.TransformerEncoder(block, 1, enable_nested_tensor=False)
        self.query = nn.Linear(dim, 2 * dim)  # one query per relation
        self.out_embed = nn.Embedding(n_nodes, dim)
        self.out_bias = nn.Embedding(n_nodes, 1)
        nn.init.zeros_(self.out_bias.weight)

    def states(self, nodes: torch.Tensor, types: torch.Tensor, links: torch.Tensor,
               kinds: torch.Tensor) -> torch.Tensor:
        """Node states after message passing.

        Parameters
        ----------
        nodes, types : torch.Tensor
            (N,) global node ids and node types of the batch's local nodes.
        links : torch.Tensor
            (2, M) directed message links (from, to) between local nodes.
        kinds : torch.Tensor
            (M,) message kind of each link (relation x direction, 0-3).

        Returns
        -------
        torch.Tensor
            (N, dim) node states.
        """
        h = self.embed(nodes) + self.type_embed(types)
        n = len(nodes)
        for messages, self_map, norm in zip(self.messages, self.selfs, self.norms):
            update = self_map(h)
            for kind, linear in enumerate(messages):
                chosen = kinds == kind
                if not bool(chosen.any()):
                    continue
                src, dst = links[0, chosen], links[1, chosen]
                total = torch.zeros_like(h).index_add_(0, dst, h[src])
                degree = torch.zeros(n, 1).index_add_(0, dst, torch.ones(len(dst), 1)).clamp_(min=1.0)
                update = update + linear(total / degree)
            h = norm(h + torch.relu(update))
        return h

    def context(self, sequences: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Causal transformer over each window's template states.

        Parameters
        ----------
        sequences : torch.Tensor
            (B, L, dim) states of START and the templates in line order (padded).
        padding : torch.Tensor
            (B, L) True at padding.

        Returns
        -------
        torch.Tensor
            (B, L, dim) context at each position (seeing only itself and earlier positions).
        """
        length = sequences.shape[1]
        position = torch.arange(length, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, sequences.shape[2], 2, dtype=torch.float32)
                              * (-math.log(1000.0) / sequences.shape[2]))
        encoding = torch.zeros(length, sequences.shape[2])
        encoding[:, 0::2] = torch.sin(position * frequency)
        encoding[:, 1::2] = torch.cos(position * frequency)
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        return self.transformer(sequences + encoding, mask=causal, src_key_padding_mask=padding)

    def logits(self, contexts: torch.Tensor, relations: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Edge logits: the relation's query from the source context against each target.

        Parameters
        ----------
        contexts : torch.Tensor
            (E, dim) context of each edge's source line.
        relations : torch.Tensor
            (E,) relation of each edge.
        targets : torch.Tensor
            (E, K) global ids of the target nodes to score (K candidates per edge).

        Returns
        -------
        torch.Tensor
            (E, K) logits.
        """
        queries = self.query(contexts).view(len(contexts), 2, -1)
        query = queries[torch.arange(len(contexts)), relations]
        return (self.out_embed(targets) * query[:, None]).sum(-1) + self.out_bias(targets)[..., 0]


@register("glad")
class GLAD(LogDetector):
    """GLAD (Li et al., ICKG 2023): window graphs of templates and fields, anomalous edges.

    Parameters
    ----------
    dim : int
        Size of node embeddings and states.
    layers : int
        Message-passing layers.
    heads : int
        Attention heads of the transformer (must divide `dim`).
    epochs : int
        Passes over the training windows.
    batch_size : int
        Windows per optimisation step.
    lr : float
        Adam learning rate.
    negatives : int
        Negative edges per observed edge.
    folds : int
        Edge folds of masked reconstruction (each fold is scored from the others' messages).
    min_count : int
        Field values found in fewer training lines, or in one training window only, share
        their type's "unseen" node.
    max_fields : int
        Fields kept per line.
    top_edges : int
        A window's score is the mean of its this many most anomalous edges.
    unknown_noise : float
        Share of negative edges that point at an unseen node (UNKNOWN template or unseen
        value), and of template nodes read as UNKNOWN in training.
    end_event : bool
        Add an edge from the last template to an END node, so that where a sequence stops is
        scored too (right for sessions; for windows cut from a stream set it False).
    **kwargs
        `LogDetector` parameters (target_fpr, calibration_fraction, seed).

    Attributes
    ----------
    field_types_ : list of str
        Field types seen in training (node type k + 1).
    field_values_ : list of list of str
        The values of each type with their own node, each list led by ``"<unseen>"``.
    model_ : torch.nn.Module
        The trained edge model.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> from oddity.logs.results import LogSequences
    >>> rng = np.random.default_rng(0)
    >>> def window(odd):
    ...     users = [f"u{k}" for k in rng.integers(0, 3, 6)]
    ...     contents = [f"login user {u}" for u in users] + [f"sudo user {'u1' if odd else 'admin'}"]
    ...     return [c.split()[0] + " user <*>" for c in contents], contents
    >>> windows = [window(k % 10 == 9) for k in range(200)]
    >>> train = LogSequences(ids=[str(k) for k in range(200)], events=[w[0] for w in windows],
    ...                      contents=[w[1] for w in windows], labels=(np.arange(200) % 10 == 9) * 1)
    >>> detector = oddity.create("glad", epochs=5).fit(train, verbose=False)
    >>> probe = [window(False), window(True)]
    >>> probe = LogSequences(ids=["ok", "odd"], events=[p[0] for p in probe], contents=[p[1] for p in probe])
    >>> prediction = detector.predict(probe)
    >>> prediction.labels.tolist()
    [False, True]
    >>> prediction.explanations[1].split(" (")[0]
    'sudo user <*> -> user=u1'
    """

    reads_contents = True

    def __init__(self, *, dim: int = 32, layers: int = 2, heads: int = 2, epochs: int = 30,
                 batch_size: int = 32, lr: float = 3e-3, negatives: int = 4, folds: int = 3,
                 min_count: int = 2, max_fields: int = 8, top_edges: int = 3,
                 unknown_noise: float = 0.05, end_event: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.dim = dim
        self.layers = layers
        self.heads = heads
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.negatives = negatives
        self.folds = folds
        self.min_count = min_count
        self.max_fields = max_fields
        self.top_edges = top_edges
        self.unknown_noise = unknown_noise
        self.end_event = end_event

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`."""
        super().validate_params()
        check_positive_ints(dim=self.dim, layers=self.layers, heads=self.heads, epochs=self.epochs,
                            batch_size=self.batch_size, negatives=self.negatives, min_count=self.min_count,
                            max_fields=self.max_fields, top_edges=self.top_edges)
        if self.dim % self.heads or self.dim % 2:
            raise ConfigError(f"glad: dim {self.dim} must be even and a multiple of heads {self.heads}")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"glad: folds must be an integer >= 2 (edges of one fold are scored "
                              f"from the others), got {self.folds!r}")
        check_positive(lr=self.lr)
        check_fraction("unknown_noise", self.unknown_noise)

    # --- nodes ----------------------------------------------------------------------------------
    def _build_nodes(self) -> None:
        """Node layout: template codes, START, END, then per field type its unseen node and values."""
        self.start_, self.end_ = self.n_codes, self.n_codes + 1
        sizes = [len(v) for v in self.field_values_]
        self.offsets_ = self.n_codes + 2 + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.n_nodes_ = self.n_codes + 2 + int(sum(sizes))
        self.node_types_ = np.zeros(self.n_nodes_, dtype=np.int64)
        for k, (offset, size) in enumerate(zip(self.offsets_, sizes)):
            self.node_types_[offset:offset + size] = k + 1
        self.value_index_ = [{v: i for i, v in enumerate(values)} for values in self.field_values_]
        self.type_index_ = {t: k for k, t in enumerate(self.field_types_)}

    def _field_nodes(self, content: str | None) -> list[tuple[int, str]]:
        """(node, text) of the fields of a message; an unseen value keeps its text."""
        nodes = []
        for kind, value in extract_fields(content or "", self.max_fields):
            k = self.type_index_.get(kind)
            if k is not None:
                nodes.append((int(self.offsets_[k]) + self.value_index_[k].get(value, 0), f"{kind}={value}"))
        return nodes

    def _graph(self, codes: np.ndarray, events: list[str], contents: list[str] | None) -> WindowGraph:
        local: dict[int, int] = {self.start_: 0}
        names = ["<start>"]
        order = [0]
        for code, event in zip(codes, events):
            # an unknown template is one node per distinct text
            key = int(code) if code != UNKNOWN else -1 - len(names)
            if key not in local:
                local[key] = len(local)
                names.append(event)
            order.append(local[key])
        edges: dict[tuple[int, int, int], int] = {}  # (source, target, relation) -> first position
        for position in range(1, len(order)):
            here = order[position]
            edges.setdefault((order[position - 1], here, NEXT), position - 1)
            for node, text in self._field_nodes(contents[position - 1] if contents else None):
                if node not in local:
                    local[node] = len(local)
                    names.append(text)
                edges.setdefault((here, local[node], LINE), position)
        if self.end_event:
            local[self.end_] = len(local)
            names.append("<end>")
            edges.setdefault((order[-1], local[self.end_], NEXT), len(order) - 1)
        keys = list(edges)
        nodes = np.fromiter((k if k >= 0 else UNKNOWN for k in local), dtype=np.int64, count=len(local))
        return WindowGraph(nodes=nodes, names=names,
                           order=np.array(order, dtype=np.int64),
                           source=np.array([edges[k] for k in keys], dtype=np.int64),
                           target=np.array([k[1] for k in keys], dtype=np.int64),
                           relation=np.array([k[2] for k in keys], dtype=np.int64))

    def _graphs(self, codes: list[np.ndarray], sequences: LogSequences) -> list[WindowGraph]:
        contents = sequences.contents or [None] * len(codes)
        return [self._graph(c, e, t) for c, e, t in zip(codes, sequences.events, contents)]

    # --- batches --------------------------------------------------------------------------------
    def _fold_edges(self, graphs: list[WindowGraph], folds: list[np.ndarray], fold: int,
                    rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """The edges of `fold` in each graph, with messages passed over the other folds only.

        Returns (source contexts (E, dim), relations (E,), target node ids (E,), (window, edge)
        index of each edge). In training (`rng` given) a share `unknown_noise` of the template
        nodes is read as UNKNOWN, so that an unseen template has a trained context too.
        """
        nodes, links, kinds, sequences, rows = [], [], [], [], []
        contexts_at, targets, relations = [], [], []
        offset = 0
        for w, (graph, assigned) in enumerate(zip(graphs, folds)):
            scored = assigned == fold
            # a NEXT edge leaves from the template at its source position; a LINE edge too
            src_local = graph.order[graph.source]
            keep = ~scored
            a, b, r = src_local[keep] + offset, graph.target[keep] + offset, graph.relation[keep]
            links += [np.stack([a, b]), np.stack([b, a])]
            kinds += [2 * r, 2 * r + 1]
            nodes.append(graph.nodes)
            sequences.append(graph.order + offset)
            index = np.flatnonzero(scored)
            rows += [(w, e) for e in index]
            contexts_at += [(w, int(p)) for p in graph.source[index]]
            targets.append(graph.nodes[graph.target[index]])
            relations.append(graph.relation[index])
            offset += len(graph.nodes)
        node_ids = np.concatenate(nodes)
        if rng is not None:
            hidden = (node_ids >= FIRST) & (node_ids < self.n_codes) & (rng.random(len(node_ids)) < self.unknown_noise)
            node_ids = np.where(hidden, UNKNOWN, node_ids)
        node_ids = torch.from_numpy(node_ids)
        h = self.model_.states(node_ids, torch.from_numpy(self.node_types_)[node_ids],
                               torch.from_numpy(np.concatenate(links, axis=1)),
                               torch.from_numpy(np.concatenate(kinds)))
        length = max(len(s) for s in sequences)
        padded = torch.zeros(len(sequences), length, dtype=torch.long)
        padding = torch.ones(len(sequences), length, dtype=torch.bool)
        for w, s in enumerate(sequences):
            padded[w, :len(s)] = torch.from_numpy(s)
            padding[w, :len(s)] = False
        context = self.model_.context(h[padded], padding)
        at = np.array(contexts_at, dtype=np.int64).reshape(-1, 2)
        return (context[at[:, 0], at[:, 1]], torch.from_numpy(np.concatenate(relations)),
                np.concatenate(targets), np.array(rows, dtype=np.int64).reshape(-1, 2))

    def _noise(self, graphs: list[WindowGraph]) -> list[np.ndarray]:
        """Sampling tables per node type: (node ids, cumulative probabilities) from training counts."""
        counts = np.zeros(self.n_nodes_)
        for graph in graphs:
            np.add.at(counts, graph.nodes[graph.target], 1.0)
        tables = []
        for kind in range(len(self.field_types_) + 1):
            ids = np.flatnonzero(self.node_types_ == kind)
            ids = ids[(ids != PAD) & (ids != self.start_)]
            unseen = UNKNOWN if kind == 0 else int(self.offsets_[kind - 1])
            weights = counts[ids] ** 0.75
            if weights.sum() > 0:
                weights = weights / weights.sum() * (1.0 - self.unknown_noise)
            weights[ids == unseen] += self.unknown_noise
            tables.append((ids, np.cumsum(weights / weights.sum())))
        return tables

    def _folds(self, graph: WindowGraph, salt: int) -> np.ndarray:
        """Fold of each edge, the same for both directions of a node pair (so no edge's own
        pair passes a message when it is scored)."""
        a, b = graph.nodes[graph.order[graph.source]], graph.nodes[graph.target]
        low, high = np.minimum(a, b), np.maximum(a, b)
        key = (low * 1_000_003 + high * 7_919 + graph.relation * 104_729 + salt) % 2_147_483_647
        return key % self.folds

    # --- hooks ----------------------------------------------------------------------------------
    def _fit_codes(self, codes, labels, sequences, verbose) -> None:
        lines: dict[tuple[str, str], set] = {}  # field -> the lines it is found in
        windows: dict[tuple[str, str], set] = {}  # field -> the windows it is found in
        for w, window in enumerate(sequences.contents or []):
            numbers = sequences.lines[w] if sequences.lines is not None else [(w, i) for i in range(len(window))]
            for number, content in zip(numbers, window):
                for field in extract_fields(content or "", self.max_fields):
                    lines.setdefault(field, set()).add(number)
                    windows.setdefault(field, set()).add(w)
        types = sorted({kind for kind, _ in lines})
        self.field_types_ = types
        self.field_values_ = [["<unseen>"] + sorted(v for (k, v) in lines if k == kind
                                                    and len(lines[k, v]) >= self.min_count
                                                    and len(windows[k, v]) >= 2) for kind in types]
        self._build_nodes()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        graphs = self._graphs(codes, sequences)
        tables = self._noise(graphs)
        self.model_ = EdgeModel(self.n_nodes_, len(types) + 1, self.dim, self.layers, self.heads)
        optimiser = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        self.model_.train()
        for _ in tqdm(range(self.epochs), desc=f"train {self.name}", unit="epoch", disable=not verbose,
                      leave=False):
            order = rng.permutation(len(graphs))
            for start in range(0, len(graphs), self.batch_size):
                batch = [graphs[i] for i in order[start:start + self.batch_size]]
                salt = int(rng.integers(1 << 30))
                folds = [self._folds(g, salt) for g in batch]
                for fold in range(self.folds):
                    if not any((f == fold).any() for f in folds):
                        continue
                    context, relation, targets, _ = self._fold_edges(batch, folds, fold, rng)
                    candidates = torch.from_numpy(np.column_stack([targets, self._negatives(targets, tables, rng)]))
                    logits = self.model_.logits(context, relation, candidates)
                    # a negative drawn equal to the observed target is no negative
                    valid = (candidates[:, 1:] != candidates[:, :1]).float()
                    loss = (-nn.functional.logsigmoid(logits[:, 0]).mean()
                            - (nn.functional.logsigmoid(-logits[:, 1:]) * valid).sum(1).mean())
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        self.model_.eval()

    def _negatives(self, targets: np.ndarray, tables: list, rng: np.random.Generator) -> np.ndarray:
        """(E, negatives) random nodes of the same type as each target, drawn from the tables."""
        out = np.empty((len(targets), self.negatives), dtype=np.int64)
        kinds = self.node_types_[targets]
        for kind in np.unique(kinds):
            rows = kinds == kind
            ids, cumulative = tables[kind]
            drawn = np.searchsorted(cumulative, rng.random((int(rows.sum()), self.negatives)), side="right")
            out[rows] = ids[np.minimum(drawn, len(ids) - 1)]
        return out

    def edge_scores(self, sequences: LogSequences) -> list[tuple[WindowGraph, np.ndarray]]:
        """Every window's graph with the anomaly score (minus log-probability) of each edge.

        Parameters
        ----------
        sequences : LogSequences
            Windows or sessions, with their messages in `contents` (without them only
            template edges exist).

        Returns
        -------
        list of (WindowGraph, numpy.ndarray)
            Per window, its graph and one score per edge.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        return self._window_edges(self.encode(sequences), sequences)

    def _window_edges(self, codes: list[np.ndarray], sequences: LogSequences) -> list[tuple[WindowGraph, np.ndarray]]:
        graphs = self._graphs(codes, sequences)
        folds = [self._folds(g, 0) for g in graphs]
        scores = [np.zeros(len(g.target)) for g in graphs]
        with torch.inference_mode():
            for start in range(0, len(graphs), 256):
                batch, batch_folds = graphs[start:start + 256], folds[start:start + 256]
                for fold in range(self.folds):
                    if not any((f == fold).any() for f in batch_folds):
                        continue
                    context, relation, targets, rows = self._fold_edges(batch, batch_folds, fold)
                    logits = self.model_.logits(context, relation, torch.from_numpy(targets)[:, None])
                    values = (-nn.functional.logsigmoid(logits[:, 0])).double().numpy()
                    for (w, e), value in zip(rows, values):
                        scores[start + w][e] = value
        return list(zip(graphs, scores))

    def _score_codes(self, codes, sequences: LogSequences):
        scores, event_scores, explanations = [], [], []
        for (graph, edge), window in zip(self._window_edges(codes, sequences), codes):
            worst = np.argsort(-edge, kind="stable")[:self.top_edges]
            scores.append(float(edge[worst].mean()) if len(worst) else 0.0)
            # a LINE edge belongs to its line, a NEXT edge to the line it leads to, END to the last
            line = np.minimum(np.where(graph.relation == LINE, graph.source, graph.source + 1) - 1, len(window) - 1)
            per_event = np.zeros(len(window))
            np.maximum.at(per_event, line, edge)
            event_scores.append(per_event)
            explanations.append("; ".join(
                f"{graph.names[graph.order[graph.source[e]]]} -> {graph.names[graph.target[e]]} "
                f"({edge[e]:.2f})" for e in worst))
        return np.array(scores), event_scores, explanations

    # --- persistence ----------------------------------------------------------------------------
    def _get_state(self):
        values, arrays = super()._get_state()
        values = {**values, "field_types_": self.field_types_, "field_values_": self.field_values_}
        return values, {**arrays, **module_arrays({"model": self.model_})}

    def _set_state(self, values, arrays) -> None:
        super()._set_state(values, arrays)
        self.field_types_ = list(values["field_types_"])
        self.field_values_ = [list(v) for v in values["field_values_"]]
        self._build_nodes()
        self.model_ = EdgeModel(self.n_nodes_, len(self.field_types_) + 1, self.dim, self.layers, self.heads)
        load_module_arrays({"model": self.model_}, arrays, self.name)
        self.model_.eval()
