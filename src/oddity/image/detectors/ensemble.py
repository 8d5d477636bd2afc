"""Ensemble: several image detectors, each put on one rank scale, averaged.

Zimek, Campello and Sander, "Ensembles for Unsupervised Outlier Detection: Challenges and
Research Questions", SIGKDD Explorations 15(1), 2014, https://doi.org/10.1145/2594473.2594476

Method: every member (PatchCore and PaDiM by default) is fitted on the same normal images,
less a held-out part. Each member's image scores and map values on those held-out normal
images define its rank scale: a raw value maps to the standard-normal quantile of its rank
among them (`RankScale`), so on normal images every member speaks the same units whatever its
raw scale. The ensemble's image score is the mean of its members' rank-scaled image scores,
its map the mean of their rank-scaled maps (members that do not localise give no map).
Thresholds are calibrated on the held-out images, each scored with rank scales built from the
other held-out images (leave one out), so that the calibration scores are not in-sample.

Deviations (reasons and figures: docs/methods/ensemble.md):
- Ranks beyond the held-out range are extrapolated linearly from the upper (lower) quarter of
  the scale, so that scores above every held-out normal one keep their order.
- Map scales rest on a fixed subsample of each held-out map's pixels (`MAP_PIXELS` per image).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from oddity.core.errors import ConfigError, DataError
from oddity.core.registry import get_detector_class, register
from oddity.core.results import ImageScores
from oddity.image.detector import ImageDetector, ImageInput, as_samples
from oddity.image.pipeline import BATCH_SIZE

MAP_PIXELS = 4096  # map values kept per held-out image for a member's map scale
MAP_KNOTS = 256  # quantiles kept of a member's pooled map values
TAIL = 0.75  # the upper (lower) tail slope is taken over this outer part of the scale


@dataclass(frozen=True)
class RankScale:
    """A monotone map from one detector's raw values to standard-normal units, learned from
    its values on normal images: knot `values[k]` (sorted, distinct) maps to `normal[k]`, the
    standard-normal quantile of its rank; between knots the map is linear, beyond them it
    continues linearly with the slope of the outer `1 - TAIL` of the knots.

    Attributes
    ----------
    values : numpy.ndarray
        (K,) increasing raw knots.
    normal : numpy.ndarray
        (K,) their standard-normal quantiles (non-decreasing).
    """

    values: np.ndarray
    normal: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, max_knots: int | None = None) -> RankScale:
        """The rank scale of normal `values`.

        Parameters
        ----------
        values : numpy.ndarray
            Raw values of normal items (any shape, finite).
        max_knots : int, optional
            Keep at most this many knots (quantiles of `values`); all values when None.

        Returns
        -------
        RankScale
            The scale.

        Raises
        ------
        DataError
            If fewer than two values are given or some are not finite.
        """
        values = np.sort(np.asarray(values, dtype=np.float64).ravel())
        if values.size < 2 or not np.all(np.isfinite(values)):
            raise DataError("a rank scale needs at least two finite normal values")
        ranks = (np.arange(values.size) + 0.5) / values.size  # Hazen plotting positions
        if max_knots is not None and values.size > max_knots:
            ranks = (np.arange(max_knots) + 0.5) / max_knots
            values = np.quantile(values, ranks)
        knots, start = np.unique(values, return_index=True)
        normal = stats.norm.ppf(np.add.reduceat(ranks, start) / np.diff(np.r_[start, ranks.size]))
        return cls(knots, normal)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Raw values in standard-normal units.

        Parameters
        ----------
        raw : numpy.ndarray
            Values of any shape.

        Returns
        -------
        numpy.ndarray
            float32, the same shape.
        """
        raw = np.asarray(raw, dtype=np.float64)
        x, z = self.values, self.normal
        if x.size == 1:  # every normal value was the same: distance from it
            return (raw - x[0]).astype(np.float32)
        scaled = np.interp(raw, x, z)
        inner = min(int(TAIL * (x.size - 1)), x.size - 2)
        upper = (z[-1] - z[inner]) / max(x[-1] - x[inner], 1e-12 * max(1.0, abs(x[-1])))
        lower = (z[-1 - inner] - z[0]) / max(x[-1 - inner] - x[0], 1e-12 * max(1.0, abs(x[0])))
        scaled = np.where(raw > x[-1], z[-1] + (raw - x[-1]) * upper, scaled)
        scaled = np.where(raw < x[0], z[0] + (raw - x[0]) * lower, scaled)
        return scaled.astype(np.float32)


def map_sample(score_map: np.ndarray, seed: int) -> np.ndarray:
    """A fixed random subsample of at most `MAP_PIXELS` values of one map.

    Parameters
    ----------
    score_map : numpy.ndarray
        (H, W) map.
    seed : int
        Seed of the subsample.

    Returns
    -------
    numpy.ndarray
        (<= MAP_PIXELS,) values.
    """
    flat = np.asarray(score_map, dtype=np.float64).ravel()
    if flat.size <= MAP_PIXELS:
        return flat
    return flat[np.random.default_rng(seed).choice(flat.size, MAP_PIXELS, replace=False)]


@register("ensemble")
class Ensemble(ImageDetector):
    """Mean of several image detectors' scores and maps, each rank-normalised on held-out normals.

    Parameters
    ----------
    members : tuple of str, default ("patchcore", "padim")
        Registered image detectors that learn from normal images (no zero-shot ones, no
        ensemble); at least one must localise.
    member_params : dict, optional
        Parameters of each member by its name, e.g. ``{"patchcore": {"coreset_ratio": 0.05}}``;
        a member is otherwise created at its defaults with the ensemble's `seed`, `target_fpr`
        and `skip_bad`. The ensemble's own pre-processing parameters (`image_size`, `tile`,
        ...) do not reach the members.
    **common
        Parameters shared by every image detector (`ImageDetector`); `calibration_fraction`
        sets the held-out part that builds the rank scales and calibrates the thresholds.

    Attributes
    ----------
    members_ : list of ImageDetector
        The fitted members, in `members` order.
    image_scales_ : list of RankScale
        Each member's rank scale of image scores.
    map_scales_ : list of RankScale or None
        Each member's rank scale of map values (None for a member that does not localise).

    See Also
    --------
    docs/methods/ensemble.md : method, deviations and figures.

    Examples
    --------
    >>> import numpy as np
    >>> import oddity
    >>> normal = np.random.default_rng(0).uniform(0.4, 0.6, size=(16, 64, 64, 3))
    >>> detector = oddity.create("ensemble", member_params={"patchcore": {"image_size": 64},
    ...                          "padim": {"image_size": 64}}, calibration_fraction=0.25)
    >>> detector = detector.fit(normal, verbose=False)
    >>> parts = normal[:2].copy()
    >>> parts[1, 20:40, 20:40] = 1.0                       # a bright square on the second part
    >>> result = detector.predict(parts, verbose=False)
    >>> result.labels.tolist(), result.maps[1].shape
    ([False, True], (64, 64))
    """

    not_a_graph = ("its members each run their own scoring graph, with their own input sizes; "
                   "export or distribute a member instead")

    members_: list[ImageDetector] | None = None
    image_scales_: list[RankScale] | None = None
    map_scales_: list[RankScale | None] | None = None

    def __init__(self, *, members: tuple[str, ...] = ("patchcore", "padim"),
                 member_params: dict[str, dict[str, Any]] | None = None, **common: Any):
        super().__init__(**common)
        self.members = members
        self.member_params = member_params

    def validate_params(self) -> None:
        """See `oddity.core.detector.Detector.validate_params`.

        Raises
        ------
        ConfigError
            If a member is unknown, repeated, not an image detector that learns from normal
            images, if none localises, or if `member_params` names a detector that is not a
            member or a parameter the member does not take.
        """
        super().validate_params()
        members, extra = tuple(self.members), self.member_params or {}
        if not members:
            raise ConfigError("members must name at least one image detector, e.g. ('patchcore', 'padim')")
        if len(set(members)) != len(members):
            raise ConfigError(f"members must not repeat a detector, got {members}")
        for name in members:
            cls = get_detector_class(name)
            if not issubclass(cls, ImageDetector) or cls.zero_shot or issubclass(cls, Ensemble):
                raise ConfigError(f"members: {name!r} is not an image detector that learns from normal "
                                  "images (zero-shot detectors and ensembles cannot be members)")
        if not any(get_detector_class(name).localises for name in members):
            raise ConfigError(f"members: none of {members} gives anomaly maps; add one that localises, "
                              "e.g. patchcore")
        if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
            raise ConfigError("member_params must map member names to parameter dicts, e.g. "
                              '{"patchcore": {"coreset_ratio": 0.05}}')
        strangers = sorted(set(extra) - set(members))
        if strangers:
            raise ConfigError(f"member_params names {strangers}, which are not members {members}")
        for name in members:
            self.member(name).validate_params()

    def member(self, name: str) -> ImageDetector:
        """An unfitted member as the ensemble creates it.

        Parameters
        ----------
        name : str
            One of `members`.

        Returns
        -------
        ImageDetector
            The member with its parameters (`member_params`, else defaults with the ensemble's
            seed, target FPR and skip_bad).

        Raises
        ------
        ConfigError
            If `member_params` gives the member a parameter it does not take.
        """
        cls = get_detector_class(name)
        params = {"seed": self.seed, "target_fpr": self.target_fpr, "skip_bad": self.skip_bad,
                  **(self.member_params or {}).get(name, {})}
        unknown = sorted(set(params) - set(cls.param_names()))
        if unknown:
            raise ConfigError(f"member_params: {name} has no parameter {', '.join(map(repr, unknown))}")
        return cls(**params)  # type: ignore[return-value]

    def fit(self, data: ImageInput, *, verbose: bool = True) -> Ensemble:
        """Fit every member on the normal images less a held-out part, learn each member's rank
        scales on the held-out images, and calibrate thresholds on them (leave one out).

        Parameters
        ----------
        data : str, path, list or array
            Normal images, as for `ImageDetector.fit`.
        verbose : bool, default True
            Show progress bars.

        Returns
        -------
        Ensemble
            self, fitted.

        Raises
        ------
        DataError
            If fewer than three held-out images are left to build the scales, or images
            cannot be read.
        ConfigError
            If a parameter is invalid.
        """
        self.validate_params()
        samples = as_samples(data, for_fit=True)
        self.skipped_ = set()
        fit_samples, held_out = self._split_calibration(samples)
        if len(held_out) < 3:
            raise DataError(f"ensemble holds out {len(held_out)} of {len(samples)} images to put its "
                            "members on one scale and needs at least 3: give more normal images or "
                            "a larger calibration_fraction")
        members = []
        for name in self.members:
            member = self.member(name)
            member.fit(fit_samples, verbose=verbose)
            members.append(member)
        self.members_ = members
        self.image_size_ = members[0].input_size()  # the saved pipeline is its first member's
        outputs = self._member_scores(held_out, verbose=False, desc="calibrate", batch_size=BATCH_SIZE)
        self.calibration_images_ = list(outputs[0].paths)
        pools = [None if out.maps is None else [map_sample(m, i) for i, m in enumerate(out.maps)]
                 for out in outputs]
        scores, maps = [], []
        for left in range(len(outputs[0])):  # each held-out image scored by scales without it
            keep = np.arange(len(outputs[0])) != left
            self._set_scales(outputs, pools, keep)
            combined = self._combine([ImageScores(out.scores[left:left + 1],
                                                  None if out.maps is None else [out.maps[left]])
                                      for out in outputs])
            scores.append(combined.scores[0])
            maps.append(combined.maps[0])
        self._set_scales(outputs, pools, np.ones(len(outputs[0]), dtype=bool))
        self.threshold_ = None
        self._calibrate(ImageScores(np.asarray(scores), maps, self.calibration_images_), "conformal")
        return self

    def _set_scales(self, outputs: list[ImageScores], pools: list, keep: np.ndarray) -> None:
        self.image_scales_ = [RankScale.fit(out.scores[keep]) for out in outputs]
        self.map_scales_ = [None if pool is None else
                            RankScale.fit(np.concatenate([p for p, k in zip(pool, keep) if k]), MAP_KNOTS)
                            for pool in pools]

    def _member_scores(self, samples: list, verbose: bool, desc: str, batch_size: int) -> list[ImageScores]:
        assert self.members_ is not None
        outputs = [member.score(samples, verbose=verbose, desc=f"{desc} {member.name}", batch_size=batch_size)
                   for member in self.members_]
        if any(out.paths != outputs[0].paths for out in outputs):
            raise DataError("the ensemble's members scored different images (an unreadable file "
                            "skipped by one only); fix or remove the unreadable files")
        return outputs

    def _combine(self, outputs: list[ImageScores]) -> ImageScores:
        """Mean of the members' rank-scaled scores and maps."""
        assert self.image_scales_ is not None and self.map_scales_ is not None
        scores = np.mean([scale(out.scores) for scale, out in zip(self.image_scales_, outputs)], axis=0)
        localised = [(scale, out.maps) for scale, out in zip(self.map_scales_, outputs) if scale is not None]
        maps = [np.mean([scale(member_maps[i]) for scale, member_maps in localised], axis=0)
                for i in range(len(scores))]
        return ImageScores(scores=scores.astype(np.float64), maps=maps, paths=outputs[0].paths)

    def score(self, data: ImageInput, *, verbose: bool = True, desc: str = "score",
              batch_size: int = BATCH_SIZE, _calibrating: bool = False) -> ImageScores:
        """Every member scores the images; their rank-scaled scores and maps are averaged.

        Parameters
        ----------
        data : str, path, list or array
            Images as for `ImageDetector.score`.
        verbose : bool, default True
            Show a progress bar per member.
        desc : str, default "score"
            Label of the progress bars.
        batch_size : int, default BATCH_SIZE
            Most model inputs each member scores at once.

        Returns
        -------
        ImageScores
            Scores and maps (each image's own size) in standard-normal units of normal images.

        Raises
        ------
        NotFittedError
            If the ensemble is not fitted.
        DataError
            If none of the images can be read.
        """
        self._check_fitted()
        samples = as_samples(data, for_fit=False)
        return self._combine(self._member_scores(samples, verbose, desc, batch_size))

    # --- persistence: each member through its own document ----------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        values, arrays = super()._get_state()
        assert self.members_ is not None and self.image_scales_ is not None and self.map_scales_ is not None
        documents = []
        for index, member in enumerate(self.members_):
            document, member_arrays = member.to_document()
            documents.append(document)
            arrays.update({f"member{index}/{key}": value for key, value in member_arrays.items()})
            scales = {"image": self.image_scales_[index], "map": self.map_scales_[index]}
            for kind, scale in scales.items():
                if scale is not None:
                    arrays[f"scale{index}/{kind}_values"] = scale.values
                    arrays[f"scale{index}/{kind}_normal"] = scale.normal
        return {**values, "members": documents}, arrays

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(values, arrays)
        documents = values["members"]
        if [d.get("detector") for d in documents] != list(self.members):
            raise DataError(f"model file's member models {[d.get('detector') for d in documents]} do not "
                            f"match its members {list(self.members)}")
        members, image_scales, map_scales = [], [], []
        for index, document in enumerate(documents):
            prefix = f"member{index}/"
            member_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            cls = get_detector_class(document["detector"])
            members.append(cls.from_document(document, member_arrays, f"ensemble member {document['detector']}"))

            def scale(kind: str) -> RankScale | None:
                key = f"scale{index}/{kind}"  # noqa: B023 - used at once
                if f"{key}_values" not in arrays:
                    return None
                return RankScale(arrays[f"{key}_values"], arrays[f"{key}_normal"])

            image_scale = scale("image")
            if image_scale is None:
                raise DataError(f"model file lacks the image rank scale of member {document['detector']}")
            image_scales.append(image_scale)
            map_scales.append(scale("map") if members[-1].localises else None)
        self.members_, self.image_scales_, self.map_scales_ = members, image_scales, map_scales
