"""The Detector contract shared by every modality: parameters, saving and loading."""
import inspect

import numpy as np
import pytest

import oddity
from oddity.core.errors import ConfigError, ModelFileError
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


@pytest.mark.parametrize("name", oddity.list_detectors())
def test_the_constructor_only_stores_and_fit_checks(name):
    detector = get_detector_class(name)(target_fpr=2.0)  # no error: nothing is checked yet
    assert detector.target_fpr == 2.0
    with pytest.raises(ConfigError, match="target_fpr"):
        detector.fit(None)  # refused before the data is looked at
    with pytest.raises(ConfigError, match="target_fpr"):
        oddity.create(name, target_fpr=2.0)


def test_a_model_file_with_an_invalid_parameter_is_refused(tmp_path):
    detector = oddity.create("rolling_zscore", window=16).fit(np.sin(np.arange(300) / 8), verbose=False)
    path = tmp_path / "model.oddity"
    detector.save(path)
    document, arrays = load_model(path)
    document["params"]["window"] = 1
    save_model(path, document, arrays)
    with pytest.raises(ModelFileError, match="window must be at least 2"):
        oddity.load(path)


def test_a_list_stored_for_a_tuple_parameter_loads_as_a_tuple():
    from oddity.core.params import check_params

    cls = get_detector_class("patchcore")
    assert check_params(cls, {"layers": ["stage3"]}) == {"layers": ("stage3",)}
    assert check_params(cls, {"layers": "stage3"}) == {"layers": ("stage3",)}
    assert check_params(get_detector_class("xgb_forecast"), {"targets": ["y"]}) == {"targets": ("y",)}
