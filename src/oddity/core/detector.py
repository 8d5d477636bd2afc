"""The Detector contract every method follows, whatever its modality.

scikit-learn style: the constructor only stores hyper-parameters (keyword arguments, kept in
the saved JSON), `fit` learns normal and returns self, learned state ends in an underscore.
`score` gives raw anomaly scores (higher = more anomalous), `predict` applies the calibrated
threshold. Subclasses say which arrays make up their learned state (`_get_state` /
`_set_state`), and `save` / `oddity.load` take care of the rest.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, ClassVar

import numpy as np

from oddity.core.errors import ModelFileError, NotFittedError
from oddity.core.persistence import load_model, save_model
from oddity.core.thresholds import Threshold, manual_threshold


class Detector:
    """Base class: parameters, thresholds, persistence. Modalities add fit/score/predict."""

    name: ClassVar[str] = "detector"
    modality: ClassVar[str] = "generic"

    threshold_: Threshold | None = None
    # Values of parameters added after models were first saved, for files that lack them (what
    # those models were fitted with), so an old file loads as it was fitted, not with a new default.
    legacy_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """Constructor parameter names, gathered over the class hierarchy (each class's
        `__init__` names its own and passes the rest on); the CLI checks options against them."""
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
        """Constructor parameters by name, read back from the attributes that hold them."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return self.threshold_ is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted: call fit(normal_data) or oddity.load(path)"
            )

    def set_threshold(self, value: float) -> None:
        """Override the calibrated threshold with a user-chosen value."""
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

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted detector to `path` (safetensors + JSON header, atomic)."""
        self._check_fitted()
        values, arrays = self._get_state()
        document = {
            "detector": self.name,
            "params": self.get_params(),
            "thresholds": {k: t.to_dict() for k, t in self._thresholds().items()},
            "state": values,
        }
        save_model(path, document, arrays)

    @classmethod
    def _from_document(cls, document: dict, arrays: dict[str, np.ndarray], path: str) -> "Detector":
        try:
            detector = cls(**{**cls.legacy_params, **document["params"]})
            for attribute, fields in document["thresholds"].items():
                setattr(detector, attribute, Threshold(**fields))
            detector._set_state(document["state"], arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: model file is inconsistent ({exc}); refit it") from None
        return detector


def load(path: str | os.PathLike) -> Detector:
    """Load any detector saved with `Detector.save` (no code is executed from the file)."""
    from oddity.core.registry import get_detector_class

    document, arrays = load_model(path)
    cls = get_detector_class(document.get("detector", "?"))
    return cls._from_document(document, arrays, str(path))
