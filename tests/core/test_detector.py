"""The Detector contract shared by every modality: parameters, saving and loading."""
import inspect

import numpy as np
import pytest

import oddity
from oddity.core.persistence import load_model, save_model
from oddity.core.registry import get_detector_class


@pytest.mark.parametrize("name", oddity.list_detectors())
def test_verbose_is_an_argument_of_fit_never_a_parameter(name):
    cls = get_detector_class(name)
    assert "verbose" not in cls.param_names()
    fit = inspect.signature(cls.fit).parameters
    assert fit["verbose"].kind is inspect.Parameter.KEYWORD_ONLY and fit["verbose"].default is True


def test_a_model_saved_with_verbose_as_a_parameter_still_loads(tmp_path):
    values = np.sin(np.arange(300) / 8)
    detector = oddity.create("rolling_zscore", window=16).fit(values, verbose=False)
    path = tmp_path / "model.oddity"
    detector.save(path)
    document, arrays = load_model(path)
    document["params"]["verbose"] = False  # what older files hold
    save_model(path, document, arrays)
    loaded = oddity.load(path)
    assert loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.score(values).scores, detector.score(values).scores)
