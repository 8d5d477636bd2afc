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
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from drain3.drain import Drain, LogCluster, Node

from oddity.core.errors import ConfigError, ModelFileError
from oddity.logs.masking import DEFAULT_MASKS, Masker

UNSEEN = -1  # template id of a message that matches no known template (match-only mode)
UNSEEN_TEXT = "<unseen>"  # its template text
MATCH_CACHE = 100_000  # masked messages whose template `learn` and `match` remember


def _node_to_dict(node: Node) -> dict[str, Any]:
    return {"ids": list(node.cluster_ids),
            "children": {key: _node_to_dict(child) for key, child in node.key_to_child_node.items()}}


def _node_from_dict(data: dict[str, Any]) -> Node:
    node = Node()
    node.cluster_ids = [int(i) for i in data["ids"]]
    node.key_to_child_node = {key: _node_from_dict(child) for key, child in data["children"].items()}
    return node


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

    Notes
    -----
    The defaults (sim_th 0.7, depth 5, `=` as delimiter) give the best mean grouping accuracy
    over all 16 Loghub-2k sets among sim_th 0.6-0.9, depth 4-6 and the delimiters `=` and `,`
    (see docs/logs.md).
    """

    def __init__(self, *, sim_th: float = 0.7, depth: int = 5, max_children: int = 100,
                 masks: Any = None, extra_delimiters: tuple[str, ...] = ("=",)):
        if not 0.0 < sim_th <= 1.0:
            raise ConfigError(f"sim_th must lie in (0, 1], got {sim_th}")
        if depth < 3:
            raise ConfigError(f"depth must be at least 3, got {depth}")
        self.sim_th = float(sim_th)
        self.depth = int(depth)
        self.max_children = int(max_children)
        self.masks = tuple((str(n), str(p)) for n, p in (DEFAULT_MASKS if masks is None else masks))
        self.extra_delimiters = tuple(extra_delimiters)
        self.masker = Masker(self.masks)
        self.drain = Drain(sim_th=self.sim_th, depth=self.depth, max_children=self.max_children,
                           extra_delimiters=self.extra_delimiters)
        self.unseen = Counter()  # masked message -> count, for messages `match` could not place
        self._matched: dict[str, int] = {}  # masked message -> template id (match is exact:
        # templates do not change while matching, so a repeated masked message is looked up)
        self._learned: dict[str, LogCluster] = {}  # masked message -> the cluster `learn` put
        # it in without changing any template; valid until a template is created or changed

    def settings(self) -> dict[str, Any]:
        """The constructor arguments (JSON-friendly).

        Returns
        -------
        dict
            Argument name to value.
        """
        return {"sim_th": self.sim_th, "depth": self.depth, "max_children": self.max_children,
                "masks": [list(rule) for rule in self.masks],
                "extra_delimiters": list(self.extra_delimiters)}

    def learn(self, content: str) -> int:
        """Mine `content` (a message without its header): the id of its template, which may
        be new or may have been generalised by this message.

        Parameters
        ----------
        content : str
            A message without its header.

        Returns
        -------
        int
            The template id.
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
        return cluster.cluster_id

    def match(self, content: str) -> int:
        """Id of the known template `content` matches exactly (wildcards match any token), or
        `UNSEEN`; the parser is not changed except for the count of unseen messages.

        Parameters
        ----------
        content : str
            A message without its header.

        Returns
        -------
        int
            The template id, or `UNSEEN`.
        """
        masked = self.masker.mask(content)
        template_id = self._matched.get(masked)
        if template_id is None:
            cluster = self.drain.match(masked, full_search_strategy="fallback")
            template_id = UNSEEN if cluster is None else cluster.cluster_id
            if len(self._matched) >= MATCH_CACHE:
                self._matched.clear()
            self._matched[masked] = template_id
        if template_id == UNSEEN:
            self.unseen[masked] += 1
        return template_id

    def template(self, template_id: int) -> str:
        """The template text of a template id (`<unseen>` for `UNSEEN`).

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
        return self.drain.id_to_cluster[template_id].get_template()

    def templates(self) -> dict[int, tuple[str, int]]:
        """Template id -> (template text, number of messages mined into it).

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
            parser = cls(**data["settings"])
            for cluster_id, tokens, size in data["clusters"]:
                cluster = LogCluster(tokens, int(cluster_id))
                cluster.size = int(size)
                parser.drain.id_to_cluster[int(cluster_id)] = cluster
            parser.drain.clusters_counter = int(data["counter"])
            parser.drain.root_node = _node_from_dict(data["tree"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"template parser state is inconsistent ({exc}); refit the model") from None
        return parser
