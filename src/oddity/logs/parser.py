"""Template mining with Drain (drain3), general masking and state kept as plain JSON.

Drain (He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree", ICWS 2017,
https://doi.org/10.1109/ICWS.2017.13) groups log messages by length, then by their first
tokens in a fixed-depth tree, and joins a message to the most similar template of its leaf
when the share of equal tokens reaches `sim_th`; differing tokens become `<*>`.

`TemplateParser.learn` mines (templates may be created and generalised); `match` only looks
templates up, so templates fixed at fit time stay stable when scoring: a message that matches
none gets the id `UNSEEN` and is counted, never merged into a known template. The whole state
(the prefix tree and the clusters) round-trips through JSON (`to_dict` / `from_dict`); drain3's
own persistence (jsonpickle) is not used, so loading a model can never run code.

Logs repeat: most masked messages have been seen before. `learn` remembers the cluster of a
masked message that joined it without changing any template, and forgets everything when a
template is created or changed; while no template changes, Drain would put that message in
the same cluster again (its choice depends on the templates only, not on cluster sizes), so a
repeated message only counts into its cluster and skips the tree. `match` remembers every
masked message it looked up the same way. The templates are those of Drain without the caches.

Two general rules on top of Drain (docs/logs.md measures each on Loghub-2k):

- A masked value facing a constant word (`<ID>` where a template says `HTTPS`) costs
  `value_mismatch` equal tokens more than other differing tokens: a value and a word in the
  same place are more likely two events than one event with a varying word. Long messages
  still join a template across one such difference; short ones no longer do.
- Templates whose constant words are the same once values, punctuation and units are removed
  (`oddity.logs.variants.skeleton`) are one event (`merge`): Drain compares only messages of
  the same length, so an event whose variable part varies in length ("1 bytes sent" and
  "1 bytes (1.2 KB) sent") is otherwise several templates. An event is named by its first
  template (the lowest id); `match`, `template` and `templates` speak of events.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from drain3.drain import Drain, LogCluster, Node

from oddity.core.errors import ConfigError, ModelFileError
from oddity.logs.masking import DEFAULT_MASKS, Masker
from oddity.logs.variants import placeholder_pattern, skeleton

UNSEEN = -1  # template id of a message that matches no known template (match-only mode)
UNSEEN_TEXT = "<unseen>"  # its template text
MATCH_CACHE = 100_000  # masked messages whose template `learn` and `match` remember
LEGACY_SETTINGS = {"value_mismatch": 0.0, "merge": False}  # state saved before these settings existed


def _node_to_dict(node: Node) -> dict[str, Any]:
    return {"ids": list(node.cluster_ids),
            "children": {key: _node_to_dict(child) for key, child in node.key_to_child_node.items()}}


def _node_from_dict(data: dict[str, Any]) -> Node:
    node = Node()
    node.cluster_ids = [int(i) for i in data["ids"]]
    node.key_to_child_node = {key: _node_from_dict(child) for key, child in data["children"].items()}
    return node


class ValueAwareDrain(Drain):
    """Drain whose similarity charges `value_mismatch` more for a masked value facing a word.

    Parameters
    ----------
    placeholders : re.Pattern
        Finds the value placeholders in a token (`oddity.logs.variants.placeholder_pattern`).
    value_mismatch : float
        Extra cost, in equal tokens, of a position where one side holds a value and the other
        a word (0 gives Drain's own similarity).
    **kwargs
        Passed to `drain3.drain.Drain`.
    """

    def __init__(self, placeholders: re.Pattern, value_mismatch: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.placeholders = placeholders
        self.value_mismatch = float(value_mismatch)
        self.is_value: dict[str, bool] = {}  # token -> holds a placeholder (bounded by MATCH_CACHE)

    def holds_value(self, token: str) -> bool:
        """Whether `token` holds a value placeholder (remembered per token).

        Parameters
        ----------
        token : str
            One token.

        Returns
        -------
        bool
            True for a value.
        """
        value = self.is_value.get(token)
        if value is None:
            if len(self.is_value) >= MATCH_CACHE:
                self.is_value.clear()
            value = self.is_value[token] = self.placeholders.search(token) is not None
        return value

    def get_seq_distance(self, seq1: Any, seq2: Any, include_params: bool) -> tuple[float, int]:
        """Drain's similarity of template `seq1` and message `seq2` (equal lengths), less
        `value_mismatch` for every position where a value faces a word.

        Parameters
        ----------
        seq1 : sequence of str
            Template tokens.
        seq2 : sequence of str
            Message tokens.
        include_params : bool
            Count wildcard positions as equal.

        Returns
        -------
        tuple
            (similarity, number of wildcard positions).
        """
        if not seq1:
            return 1.0, 0
        equal, params = 0.0, 0
        for token1, token2 in zip(seq1, seq2):
            if token1 == self.param_str:
                params += 1
            elif token1 == token2:
                equal += 1
            elif self.value_mismatch and self.holds_value(token1) != self.holds_value(token2):
                equal -= self.value_mismatch
        if include_params:
            equal += params
        return equal / len(seq1), params


class TemplateParser:
    """Drain template miner with masking (see the module docstring).

    Parameters
    ----------
    sim_th : float
        Share of equal tokens needed to join a template, in (0, 1].
    depth : int
        Depth of Drain's prefix tree (>= 3): length, then `depth - 2` leading tokens.
    max_children : int
        Most children of a tree node before further tokens share the wildcard child.
    masks : sequence of (name, regex) pairs, optional
        Masking rules applied in order (default `oddity.logs.masking.DEFAULT_MASKS`).
    extra_delimiters : sequence of str
        Characters split on in addition to white space (default `=`, so that `key=value`
        pairs are two tokens and a varying value is one differing token).
    value_mismatch : float
        Extra cost, in equal tokens, of a masked value facing a constant word (>= 0; 0 is
        Drain's own similarity).
    merge : bool
        Join templates with the same skeleton into one event (`oddity.logs.variants`).

    Raises
    ------
    ConfigError
        On a setting out of range or an invalid mask rule.

    Notes
    -----
    The defaults (sim_th 0.7, depth 5, `=` as delimiter, value_mismatch 1, merge) were chosen
    on all 16 Loghub-2k sets at once: the best mean grouping accuracy of the swept settings
    that leave no set below Drain with the masks alone (see docs/logs.md).

    Examples
    --------
    >>> parser = TemplateParser()
    >>> a = parser.learn("10.0.0.1:80 close, 12 bytes sent, lifetime 00:01")
    >>> b = parser.learn("10.0.0.2:80 close, 1234 bytes (1.21 KB) sent, lifetime 00:02")
    >>> parser.event(a) == parser.event(b)
    True
    >>> parser.template(b)
    '<ADDR> close, <NUM> bytes sent, lifetime <TIME>'
    """

    def __init__(self, *, sim_th: float = 0.7, depth: int = 5, max_children: int = 100,
                 masks: Any = None, extra_delimiters: tuple[str, ...] = ("=",),
                 value_mismatch: float = 1.0, merge: bool = True):
        if not 0.0 < sim_th <= 1.0:
            raise ConfigError(f"sim_th must lie in (0, 1], got {sim_th}")
        if depth < 3:
            raise ConfigError(f"depth must be at least 3, got {depth}")
        if not value_mismatch >= 0:
            raise ConfigError(f"value_mismatch must be >= 0, got {value_mismatch}")
        self.sim_th = float(sim_th)
        self.depth = int(depth)
        self.max_children = int(max_children)
        self.masks = tuple((str(n), str(p)) for n, p in (DEFAULT_MASKS if masks is None else masks))
        self.extra_delimiters = tuple(extra_delimiters)
        self.value_mismatch = float(value_mismatch)
        self.merge = bool(merge)
        self.masker = Masker(self.masks)
        self.placeholders = placeholder_pattern(name for name, _ in self.masks)
        self.drain = ValueAwareDrain(self.placeholders, self.value_mismatch, sim_th=self.sim_th,
                                     depth=self.depth, max_children=self.max_children,
                                     extra_delimiters=self.extra_delimiters)
        self.unseen = Counter()  # masked message -> count, for messages `match` could not place
        self._matched: dict[str, int] = {}  # masked message -> template id (match is exact:
        # templates do not change while matching, so a repeated masked message is looked up)
        self._learned: dict[str, LogCluster] = {}  # masked message -> the cluster `learn` put
        # it in without changing any template; valid until a template is created or changed
        self._events: dict[int, int] | None = None  # cluster id -> event id, until a change

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (JSON-friendly).

        Returns
        -------
        dict
            Argument name to value.
        """
        return {"sim_th": self.sim_th, "depth": self.depth, "max_children": self.max_children,
                "masks": [list(rule) for rule in self.masks],
                "extra_delimiters": list(self.extra_delimiters),
                "value_mismatch": self.value_mismatch, "merge": self.merge}

    def learn(self, content: str) -> int:
        """Mine `content` (a message without its header): the id of its Drain template, which
        may be new or may have been generalised by this message (`event` gives its event).

        Parameters
        ----------
        content : str
            A message without its header.

        Returns
        -------
        int
            The template (cluster) id.
        """
        masked = self.masker.mask(content)
        cluster = self._learned.get(masked)
        if cluster is not None:  # what Drain would do: same leaf, same best cluster, no change
            cluster.size += 1
            return cluster.cluster_id
        cluster, change = self.drain.add_log_message(masked)
        if change == "none":
            if len(self._learned) >= MATCH_CACHE:
                self._learned.clear()
            self._learned[masked] = cluster
        else:
            self._matched.clear()
            self._learned.clear()
            self._events = None
        return cluster.cluster_id

    def event(self, template_id: int) -> int:
        """The event a template belongs to: the lowest template id with the same skeleton
        (itself when `merge` is off, `UNSEEN` for `UNSEEN`).

        Parameters
        ----------
        template_id : int
            An id from `learn` or `match`.

        Returns
        -------
        int
            The event id.
        """
        if template_id == UNSEEN or not self.merge:
            return template_id
        if self._events is None:
            first: dict[tuple[str, ...], int] = {}
            self._events = {}
            for cluster_id in sorted(self.drain.id_to_cluster):
                key = skeleton(self.drain.id_to_cluster[cluster_id].log_template_tokens, self.placeholders)
                self._events[cluster_id] = first.setdefault(key, cluster_id) if key else cluster_id
        return self._events[template_id]

    def match(self, content: str) -> int:
        """Event id of the known template `content` matches exactly (wildcards match any
        token), or `UNSEEN`; the parser is not changed except for the count of unseen messages.

        Parameters
        ----------
        content : str
            A message without its header.

        Returns
        -------
        int
            The event id, or `UNSEEN`.
        """
        masked = self.masker.mask(content)
        template_id = self._matched.get(masked)
        if template_id is None:
            cluster = self.drain.match(masked, full_search_strategy="fallback")
            template_id = UNSEEN if cluster is None else self.event(cluster.cluster_id)
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            self._matched[masked] = template_id
        if template_id == UNSEEN:
            self.unseen[masked] += 1
        return template_id

    def template(self, template_id: int) -> str:
        """The template text of the event of a template id (`<unseen>` for `UNSEEN`).

        Parameters
        ----------
        template_id : int
            An id from `learn` or `match`.

        Returns
        -------
        str
            The template text.
        """
        if template_id == UNSEEN:
            return UNSEEN_TEXT
        return self.drain.id_to_cluster[self.event(template_id)].get_template()

    def templates(self) -> dict[int, tuple[str, int]]:
        """Event id -> (template text, number of messages mined into it).

        Returns
        -------
        dict
            The events.
        """
        sizes: Counter = Counter()
        for cluster in self.drain.clusters:
            sizes[self.event(cluster.cluster_id)] += cluster.size
        return {i: (self.drain.id_to_cluster[i].get_template(), size) for i, size in sorted(sizes.items())}

    def clusters(self) -> dict[int, tuple[str, int]]:
        """Drain's own templates before `merge`: template id -> (text, messages mined into it).

        Returns
        -------
        dict
            The templates.
        """
        return {c.cluster_id: (c.get_template(), c.size) for c in self.drain.clusters}

    # --- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Settings and the whole mined state as JSON-serialisable data.

        Returns
        -------
        dict
            What `from_dict` reads.
        """
        return {"settings": self.settings(),
                "clusters": [[c.cluster_id, list(c.log_template_tokens), c.size]
                             for c in self.drain.clusters],
                "counter": self.drain.clusters_counter,
                "tree": _node_to_dict(self.drain.root_node)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TemplateParser":
        """Rebuild a parser saved with `to_dict` (same templates, same tree).

        Parameters
        ----------
        data : dict
            What `to_dict` returned.

        Returns
        -------
        TemplateParser
            The parser.
        """
        try:
            parser = cls(**{**LEGACY_SETTINGS, **data["settings"]})
            for cluster_id, tokens, size in data["clusters"]:
                cluster = LogCluster(tokens, int(cluster_id))
                cluster.size = int(size)
                parser.drain.id_to_cluster[int(cluster_id)] = cluster
            parser.drain.clusters_counter = int(data["counter"])
            parser.drain.root_node = _node_from_dict(data["tree"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"template parser state is inconsistent ({exc}); refit the model") from None
        return parser
