"""The Detector contract every method follows, whatever its modality.

scikit-learn style: the constructor only stores hyper-parameters (keyword arguments, kept in
the saved JSON); `validate_params` checks them, called by `fit`, `oddity.create` and
`oddity.load`; `fit` learns normal and returns self, learned state ends in an underscore.
`score` gives raw anomaly scores (higher = more anomalous), `predict` applies the calibrated
threshold. Subclasses say which arrays make up their learned state (`_get_state` /
`_set_state`), and `save` / `oddity.load` take care of the rest.
"""
from __future__ import annotations

import inspect
import math
import os
from typing import Any, ClassVar

import numpy as np

from oddity.core.errors import ConfigError, ModelFileError, NotFittedError
from oddity.core.params import check_params
from oddity.core.persistence import load_model, save_model
from oddity.core.thresholds import Threshold, manual_threshold


class Detector:
    """Base class of every detector: parameters, thresholds and persistence.

    Modalities add ``fit``, ``score`` and ``predict`` (`oddity.image.detector.ImageDetector`,
    `oddity.series.detector.SeriesDetector`). Constructor arguments are hyper-parameters,
    stored as given and saved with the model; what `fit` learns ends with an underscore.

    Attributes
    ----------
    name : str
        The registered name (class attribute, set by `oddity.core.registry.register`).
    modality : str
        ``"image"``, ``"series"``, ``"logs"`` or ``"video"`` (class attribute).
    threshold_ : Threshold or None
        The decision threshold calibrated by ``fit`` (None before).
    """

    name: ClassVar[str] = "detector"
    modality: ClassVar[str] = "generic"

    threshold_: Threshold | None = None
    # Values of parameters added after models were first saved, for files that lack them (what
    # those models were fitted with), so an old file loads as it was fitted, not with a new default.
    legacy_params: ClassVar[dict[str, Any]] = {}
    # Names older model files saved as parameters that are options of a call now (`verbose` is
    # an argument of fit / score / predict): dropped when such a file is loaded.
    retired_params: ClassVar[frozenset[str]] = frozenset({"verbose"})

    @classmethod
    def param_names(cls) -> list[str]:
        """Constructor parameter names, gathered over the class hierarchy.

        Each class's ``__init__`` names its own parameters and passes the rest on; the CLI
        checks ``--set`` options against these names.

        Returns
        -------
        list of str
            The names, the subclass's own first.
        """
        named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" not in vars(klass) or klass is object:
                continue
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if name != "self" and parameter.kind in named and name not in names:
                    names.append(name)
        return names

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters by name, read back from the attributes that hold them.

        Returns
        -------
        dict
            Parameter name to value; ``type(self)(**detector.get_params())`` is an unfitted copy.
        """
        return {name: getattr(self, name) for name in self.param_names()}

    def validate_params(self) -> None:
        """Check the hyper-parameters; the constructor only stores them.

        `fit`, `oddity.create` and `oddity.load` call it. Subclasses extend it (calling super()).

        Raises
        ------
        ConfigError
            Naming the first parameter out of its range or inconsistent with another.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` (or `load`) has given the detector a threshold."""
        return self.threshold_ is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted: call fit(normal_data) or oddity.load(path)"
            )

    def set_threshold(self, value: float) -> None:
        """Override the calibrated threshold with a user-chosen value.

        Parameters
        ----------
        value : float
            Scores above it are anomalous. The threshold is recorded with method ``"manual"``.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        self.threshold_ = manual_threshold(value)

    # --- learned state ------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-serialisable learned values, named arrays); subclasses extend."""
        return {}, {}

    def _set_state(self, values: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `_get_state` returned; subclasses extend."""

    def _thresholds(self) -> dict[str, Threshold]:
        return {"threshold_": self.threshold_} if self.threshold_ is not None else {}

    def to_document(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted detector as data: the JSON document `save` writes and its named arrays.

        A detector made of other detectors (`oddity.image.detectors.ensemble`) stores its
        members this way inside its own file; `from_document` reads them back.

        Returns
        -------
        document : dict
            Detector name, parameters, thresholds and learned values (JSON-serialisable).
        arrays : dict of str to numpy.ndarray
            The learned arrays.

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        self._check_fitted()
        values, arrays = self._get_state()
        document = {
            "detector": self.name,
            "params": self.get_params(),
            "thresholds": {k: t.to_dict() for k, t in self._thresholds().items()},
            "state": values,
        }
        return document, arrays

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted detector to one file: safetensors arrays with a JSON header.

        The file is written atomically; no pickle, so loading it runs no code.

        Parameters
        ----------
        path : str or os.PathLike
            The model file to write (``.oddity`` by convention).

        Raises
        ------
        NotFittedError
            If the detector is not fitted.
        """
        save_model(path, *self.to_document())

    def _verify(self, path: str) -> None:
        """Called by `load` after the state is restored: raise ModelFileError naming `path`
        when the loaded model cannot work (subclasses extend; the base checks the threshold)."""
        if not self.is_fitted:
            raise ModelFileError(f"{path}: model file has no threshold; refit it")

    @classmethod
    def from_document(cls, document: dict, arrays: dict[str, np.ndarray], path: str) -> "Detector":
        """The fitted detector that `to_document` described, checked (no code is run).

        Parameters
        ----------
        document : dict
            The JSON document (`to_document`, or a model file's header).
        arrays : dict of str to numpy.ndarray
            The learned arrays.
        path : str
            Where they came from, named in errors.

        Returns
        -------
        Detector
            The fitted detector.

        Raises
        ------
        ModelFileError
            If the document or arrays do not make a working detector of this class.
        """
        try:
            saved = {k: v for k, v in document["params"].items() if k not in cls.retired_params}
            detector = cls(**check_params(cls, {**cls.legacy_params, **saved}))
            detector.validate_params()
            for attribute, fields in document["thresholds"].items():
                setattr(detector, attribute, _checked_threshold(Threshold(**fields), attribute))
            detector._set_state(document["state"], arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{path}: model file is inconsistent ({exc}); refit it") from None
        detector._verify(path)
        return detector


def _checked_threshold(threshold: Threshold, attribute: str) -> Threshold:
    """`threshold` if its fields are usable, else a ValueError naming `attribute`."""
    value, target = threshold.value, threshold.target_fpr
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{attribute} value is {value!r}, not a finite number")
    manual = threshold.method == "manual"
    if not manual and (not isinstance(target, (int, float)) or not 0.0 < target < 1.0):
        raise ValueError(f"{attribute} target_fpr is {target!r}, not in (0, 1)")
    if not isinstance(threshold.n_calibration, int) or threshold.n_calibration < 0:
        raise ValueError(f"{attribute} n_calibration is {threshold.n_calibration!r}")
    return threshold


def load(path: str | os.PathLike) -> Detector:
    """Load any detector saved with `Detector.save` (no code is executed from the file).

    Parameters
    ----------
    path : str or os.PathLike
        A model file written by `Detector.save`.

    Returns
    -------
    Detector
        The fitted detector, of the class registered under the name saved in the file.

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt, or inconsistent with the detector's current code.
    ConfigError
        If the file names a detector that is not registered.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import oddity
    >>> detector = oddity.create("rolling_zscore", window=16).fit(np.sin(np.arange(300) / 8))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.oddity")
    >>> detector.save(path)
    >>> oddity.load(path).threshold_ == detector.threshold_
    True
    """
    from oddity.core.registry import get_detector_class

    document, arrays = load_model(path)
    try:
        cls = get_detector_class(document.get("detector", "?"))
    except ConfigError as exc:
        raise ModelFileError(f"{path}: saved by a detector this oddity does not have ({exc})") from None
    return cls.from_document(document, arrays, str(path))
