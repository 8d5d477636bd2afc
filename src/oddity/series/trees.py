"""Tree ensembles (isolation forests, gradient-boosted trees) evaluated by a loop compiled with
numba, so that one streamed row costs microseconds rather than a library call's overhead, and
each row's result is the same whatever rows come with it.

`FlatTrees` lays the trees out as flat arrays: node k of tree i at i * width + k, the two
children of flat node k at 2k and 2k + 1 of `children`, leaves leading to themselves, so every
tree is walked the same number of levels (the deepest tree's depth) with no test for having
arrived. A row goes right when its value, rounded to float32, is above the node's float32
split. The libraries' own rules map onto it exactly: scikit-learn goes left when
float32(x) <= t (t float64), which for a float32 x is float32(x) <= the largest float32 not
above t; XGBoost goes left when float32(x) < s (s float32), which is float32(x) <= the float32
just below s (`splits_below`).
"""
from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import numpy as np

from oddity.core.errors import ConfigError
from oddity.series.jit import compiled


class FlatTrees:
    """Trees as flat arrays for `sum_leaves` (module docstring).

    Parameters
    ----------
    left, right : numpy.ndarray
        (n_trees, width) child node numbers within each tree, -1 at leaves and padding.
    feature : numpy.ndarray
        (n_trees, width) split feature of each inner node.
    split : numpy.ndarray
        (n_trees, width) float32 split values: a row goes right when float32(x) > split.
    value : numpy.ndarray
        (n_trees, width) leaf values (float64 or float32; the sums take their type).

    Attributes
    ----------
    depth : int
        Levels of the deepest tree.
    roots : numpy.ndarray
        (n_trees,) flat position of each tree's root.
    children : numpy.ndarray
        (2 * nodes,) int32 flat positions of each node's left then right child (itself at a
        leaf).
    feature, split, value : numpy.ndarray
        Per flat node: split feature (int32), split value (float32) and leaf value.
    """

    def __init__(self, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                 split: np.ndarray, value: np.ndarray):
        n_trees, width = left.shape
        self.roots = np.arange(n_trees, dtype=np.int64) * width
        positions = np.arange(n_trees * width, dtype=np.int64).reshape(n_trees, width)
        leaf = left == -1
        flat_left = np.where(leaf, positions, left + self.roots[:, None]).ravel()
        flat_right = np.where(leaf, positions, right + self.roots[:, None]).ravel()
        self.children = np.stack((flat_left, flat_right), axis=1).ravel().astype(np.int32)
        self.feature = np.where(leaf, 0, feature).astype(np.int32).ravel()
        self.split = np.asarray(split, dtype=np.float32).ravel()
        self.value = np.ascontiguousarray(value).ravel()
        inner = ~leaf.ravel()
        self.depth, frontier = 0, self.roots[inner[self.roots]]
        while frontier.size:  # the inner nodes of each level
            self.depth += 1
            frontier = np.concatenate((flat_left[frontier], flat_right[frontier]))
            frontier = frontier[inner[frontier]]

    def sums(self, samples: np.ndarray, start: float = 0.0) -> np.ndarray:
        """Sum over the trees, in tree order, of the leaf value each row reaches.

        Parameters
        ----------
        samples : numpy.ndarray
            (n, d) rows (any memory layout; not copied when float64).
        start : float, default 0.0
            Value the sums start from (e.g. a boosted model's base score).

        Returns
        -------
        numpy.ndarray
            (n,) sums, of the leaf values' type, each row's computed alone.
        """
        out = np.empty(len(samples), dtype=self.value.dtype)
        compiled(sum_leaves, leaf_sum_signatures)(
            samples.astype(np.float64, copy=False), self.roots, self.children, self.feature,
            self.split, self.value, self.depth, out.dtype.type(start), out)
        return out


def splits_below(split: np.ndarray) -> np.ndarray:
    """For strict splits (left when x < s), the float32 splits of `FlatTrees`' rule (left when
    x <= split): the float32 just below each s.

    Parameters
    ----------
    split : numpy.ndarray
        float32 split values s.

    Returns
    -------
    numpy.ndarray
        float32 values, each the largest float32 below its s.
    """
    split = np.asarray(split, dtype=np.float32)
    return np.nextafter(split, np.float32(-np.inf))


def splits_at_or_below(split: np.ndarray) -> np.ndarray:
    """For float64 splits t compared with float32 values (left when float32(x) <= t), the
    float32 splits of `FlatTrees`' rule: the largest float32 not above each t.

    Parameters
    ----------
    split : numpy.ndarray
        float64 split values t.

    Returns
    -------
    numpy.ndarray
        float32 values.
    """
    split = np.asarray(split, dtype=np.float64)
    rounded = split.astype(np.float32)
    above = rounded.astype(np.float64) > split
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def sum_leaves(samples: np.ndarray, roots: np.ndarray, children: np.ndarray,
               feature: np.ndarray, split: np.ndarray, value: np.ndarray, depth: int,
               start: float, out: np.ndarray) -> None:
    """For each row, walk every tree one level at a time (independent steps the processor
    overlaps, with no branch) and write to `out` the sum, in tree order from `start`, of the
    leaf values reached. Written for numba (`oddity.series.jit`); plain Python gives the
    same numbers, slowly.

    Parameters
    ----------
    samples : numpy.ndarray
        (n, d) float64 rows.
    roots, children, feature, split, value : numpy.ndarray
        `FlatTrees`' arrays.
    depth : int
        `FlatTrees.depth`.
    start : float
        First term of each sum (of `value`'s type).
    out : numpy.ndarray
        (n,) array the sums are written to (of `value`'s type).
    """
    row_values = np.empty(samples.shape[1], np.float32)
    nodes = np.empty(roots.size, np.int64)
    for row in range(samples.shape[0]):
        row_values[:] = samples[row]  # rounded to float32, as both libraries read their input
        nodes[:] = roots
        for _ in range(depth):
            for tree in range(nodes.size):
                node = nodes[tree]
                nodes[tree] = children[2 * node + (row_values[feature[node]] > split[node])]
        total = start
        for tree in range(nodes.size):
            total += value[nodes[tree]]
        out[row] = total


def leaf_sum_signatures(numba: ModuleType) -> list[Any]:
    """numba signatures of `sum_leaves`: float64 rows of any memory layout (a strided view of
    sliding windows is walked without a copy), float64 or float32 leaf values.

    Parameters
    ----------
    numba : module
        The numba module.

    Returns
    -------
    list
        The signatures.
    """
    rows = numba.types.Array(numba.float64, 2, "A", readonly=True)  # writable arrays pass too
    index = numba.int32[::1]
    return [numba.void(rows, numba.int64[::1], index, index, numba.float32[::1], real[::1],
                       numba.int64, real, real[::1])
            for real in (numba.float64, numba.float32)]


def boosted_trees(booster: Any) -> tuple[FlatTrees, np.float32]:
    """The trees of an XGBoost "gbtree" regression booster with the "reg:squarederror"
    objective (whose prediction is the base score plus the trees' outputs) as `FlatTrees` of
    float32 leaf values, and the float32 base score their sums start from:
    `trees.sums(rows, base)` then gives `booster.inplace_predict(rows)` for finite rows
    (XGBoost, too, adds the trees' float32 outputs in order to the base).

    Parameters
    ----------
    booster : xgboost.Booster
        A fitted booster with one output and numeric splits.

    Returns
    -------
    tuple of (FlatTrees, numpy.float32)
        The walkable trees and the base score.

    Raises
    ------
    ConfigError
        When the booster is not a single-output "gbtree" model with that objective and
        numeric splits.
    """
    learner = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
    model = learner["gradient_booster"].get("model", {})
    objective = learner["objective"]["name"]
    trees = model.get("trees", [])
    if (objective != "reg:squarederror" or learner["gradient_booster"]["name"] != "gbtree"
            or model["gbtree_model_param"]["num_parallel_tree"] != "1" or not trees
            or learner["learner_model_param"].get("num_target", "1") != "1"
            or any(t["categories_nodes"] for t in trees)):
        raise ConfigError(f"only single-output 'gbtree' XGBoost regressors with the "
                          f"'reg:squarederror' objective and numeric splits can be walked; got "
                          f"objective {objective!r}, booster {learner['gradient_booster']['name']!r}")
    base = np.float32(float(learner["learner_model_param"]["base_score"].strip("[]")))
    width = max(len(t["left_children"]) for t in trees)
    arrays = {"left": np.full((len(trees), width), -1, np.int64),
              "right": np.full((len(trees), width), -1, np.int64),
              "feature": np.zeros((len(trees), width), np.int64),
              "split": np.zeros((len(trees), width), np.float32)}
    for i, tree in enumerate(trees):
        n = len(tree["left_children"])
        arrays["left"][i, :n] = tree["left_children"]
        arrays["right"][i, :n] = tree["right_children"]
        arrays["feature"][i, :n] = tree["split_indices"]
        arrays["split"][i, :n] = tree["split_conditions"]  # a leaf's value at a leaf
    leaf = arrays["left"] == -1
    return FlatTrees(arrays["left"], arrays["right"], arrays["feature"],
                     np.where(leaf, 0, splits_below(arrays["split"])),
                     np.where(leaf, arrays["split"], 0).astype(np.float32)), base
