"""Gaussian-AD learns normality on generated data, has no maps (and every consumer copes),
survives save/load, computes its chi-squared working point correctly and keeps the right
NPCA components."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy.stats import chi
from sklearn.metrics import roc_auc_score

import oddity
from oddity.cli import main
from oddity.core.errors import ConfigError
from oddity.image.data import evaluation_samples
from oddity.image.detectors.gaussian_ad import (
    GaussianAD, GaussianADScorer, chi_sum_quantile, fit_gaussian, level_distances, npca_components,
)
from oddity.image.evaluate import evaluate
from oddity.image.features import feature_extractor
from oddity.image.predictions import write_predictions
from oddity.report import write_report

SMALL = {"image_size": 64, "seed": 0}


@pytest.fixture(scope="module", params=[None, 0.05], ids=["full", "npca"])
def fitted(request, inspection_set):
    detector = oddity.create("gaussian_ad", variance_kept=request.param, **SMALL)
    return detector.fit(inspection_set, verbose=False)


def test_detects_synthetic_defects_at_image_level(fitted, inspection_set):
    samples = evaluation_samples(inspection_set)
    result = fitted.predict(samples, verbose=False)
    labels = np.array([s.label for s in samples])
    assert roc_auc_score(labels, result.scores) >= 0.9
    assert result.maps is None and result.masks is None and np.isnan(result.pixel_threshold)
    assert result.labels.dtype == bool and len(result.labels) == len(samples)
    assert fitted.threshold_.method == "cross-conformal" and fitted.pixel_threshold_ is None


def test_save_load_gives_identical_scores(fitted, inspection_set, reloaded):
    assert reloaded(fitted, evaluation_samples(inspection_set)).pixel_threshold_ is None


def test_score_is_the_sum_of_per_level_mahalanobis_distances(fitted):
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    with torch.inference_mode():
        features = feature_extractor(fitted.backbone, fitted.layers, fitted.input_norm)(torch.from_numpy(x))
        levels = [f.mean(dim=(2, 3))[0].double().numpy() for f in features]
        scores, maps = fitted.kernel()(torch.from_numpy(x))
    score = float(scores[0])
    assert maps.shape == (1, 1, 1) and float(maps[0, 0, 0]) == pytest.approx(score, rel=1e-6)
    expected = 0.0
    for level, mean, projection, precision in zip(levels, fitted.means_, fitted.projections_,
                                                  fitted.precisions_):
        delta = level - mean if projection is None else projection @ (level - mean)
        expected += np.sqrt(delta @ precision @ delta)
    assert score == pytest.approx(expected, rel=1e-9)


def test_evaluation_predictions_and_report_skip_maps(fitted, inspection_set, tmp_path):
    evaluation = evaluate(fitted, inspection_set, verbose=False)
    assert evaluation.maps is None and all(m is None for m in evaluation.masks)
    assert evaluation.metrics["image_auroc"] >= 0.9
    assert evaluation.metrics["pixel_auroc"] is None and evaluation.metrics["aupro"] is None
    assert any("no anomaly maps" in note for note in evaluation.notes)
    prediction = fitted.predict(evaluation_samples(inspection_set), verbose=False)
    csv_path = write_predictions(tmp_path / "out", prediction)
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert len(rows) == len(prediction) and all(r["overlay"] == "" and r["mask"] == "" for r in rows)
    assert not (tmp_path / "out" / "overlays").exists()
    page = write_report(tmp_path / "report", evaluation, {"detector": "gaussian_ad"})
    assert "Heat maps" not in page.read_text(encoding="utf-8")


def test_cli_fit_predict_eval(capsys, inspection_set, tmp_path):
    model = tmp_path / "g.oddity"
    assert main(["fit", "gaussian_ad", "--data", str(inspection_set), "--out", str(model),
                 "--image-size", "64", "--set", "threshold_method=\"chi2\"", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(chi2," in out and "no anomaly maps" in out
    assert main(["predict", str(model), str(inspection_set / "test"), "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    assert "no overlays or masks" in capsys.readouterr().out
    assert main(["eval", str(model), "--data", str(inspection_set), "--quiet"]) == 0
    assert "pixel AUROC" in capsys.readouterr().out


# --- the chi-squared working point ----------------------------------------------------------
def test_chi_sum_quantile_matches_exact_and_monte_carlo():
    assert chi_sum_quantile([7], 0.99) == pytest.approx(chi.ppf(0.99, 7), rel=1e-12)
    rng = np.random.default_rng(0)
    for dofs in ([2, 5], [3, 10, 40]):
        draws = sum(np.sqrt(rng.chisquare(d, 400_000)) for d in dofs)
        for p in (0.9, 0.99):
            assert chi_sum_quantile(dofs, p) == pytest.approx(np.quantile(draws, p), abs=0.02)


def test_chi2_threshold_gives_the_target_rate_on_gaussian_data():
    """Three independent Gaussian 'levels' with random, well-conditioned covariances: the
    threshold derived from the model alone passes the target share of fresh samples. (With an
    ill-conditioned covariance Ledoit-Wolf's shrinkage lifts the smallest variances and the
    rate falls below the target: 3.3% for 5% with unit-normal factor matrices.)"""
    rng = np.random.default_rng(1)
    dims, n_fit, n_test, target = (3, 8, 20), 4000, 40_000, 0.05
    factors = [np.linalg.qr(rng.normal(size=(d, d)))[0] * rng.uniform(0.5, 2.0, size=d) for d in dims]
    means = [rng.normal(size=d) * 5 for d in dims]

    def sample(n: int) -> list[np.ndarray]:
        return [m + rng.normal(size=(n, d)) @ f.T for d, f, m in zip(dims, factors, means)]

    means, projections, precisions = zip(*(fit_gaussian(level, None) for level in sample(n_fit)))
    threshold = chi_sum_quantile([len(p) for p in precisions], 1 - target)
    model = GaussianADScorer(None, list(means), list(projections), list(precisions))
    distances = level_distances([torch.from_numpy(level) for level in sample(n_test)], model)
    achieved = np.mean(distances.sum(dim=1).numpy() > threshold)
    assert abs(achieved - target) < 0.01


def test_chi2_fit_holds_nothing_out(inspection_set):
    detector = oddity.create("gaussian_ad", threshold_method="chi2", **SMALL).fit(inspection_set, verbose=False)
    assert detector.threshold_.method == "chi2" and detector.threshold_.n_calibration == 0
    assert detector.threshold_.value == pytest.approx(
        chi_sum_quantile(detector.degrees_of_freedom_, 1 - detector.target_fpr))
    assert detector.pixel_threshold_ is None


# --- NPCA ----------------------------------------------------------------------------------
def test_npca_keeps_the_least_variance_components():
    rng = np.random.default_rng(2)
    scales = np.array([10.0, 5.0, 2.0, 1.0, 0.5])  # variance shares 100, 25, 4, 1, 0.25 of 130.25
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    data = (rng.normal(size=(20_000, 5)) * scales) @ rotation.T
    centred = data - data.mean(axis=0)
    # the last two explain 1.25/130.25 < 1%, the last three 5.25/130.25 >= 1%
    kept = npca_components(centred, 0.01)
    assert kept.shape == (3, 5)
    expected = rotation[:, 2:].T
    np.testing.assert_allclose(np.abs(kept @ expected.T), np.eye(3), atol=0.02)
    assert npca_components(centred, 1.0).shape == (5, 5)
    assert npca_components(centred, 1e-4).shape == (1, 5)


def test_npca_reduces_the_degrees_of_freedom(inspection_set):
    full = oddity.create("gaussian_ad", layers=("stage3",), **SMALL).fit(inspection_set, verbose=False)
    reduced = oddity.create("gaussian_ad", layers=("stage3",), variance_kept=0.05, **SMALL).fit(
        inspection_set, verbose=False)
    assert full.degrees_of_freedom_ == [40]
    assert 1 <= reduced.degrees_of_freedom_[0] < 9  # at most (images - 1) components vary


# --- parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"variance_kept": 0.0}, {"variance_kept": 1.5}, {"threshold_method": "gauss"},
    {"layers": ()}, {"threshold_method": "chi2", "tile": 64},
])
def test_bad_parameters_are_config_errors(params):
    detector = GaussianAD(**params)  # the constructor only stores them
    with pytest.raises(ConfigError):
        detector.validate_params()


def test_unknown_layer_is_a_config_error(inspection_set):
    with pytest.raises(ConfigError, match="stage9"):
        GaussianAD(layers=("stage9",), **SMALL).fit(inspection_set, verbose=False)


@pytest.mark.parametrize("dofs, p", [([], 0.5), ([0, 3], 0.5), ([3], 1.0), ([3], 0.0)])
def test_chi_sum_quantile_rejects_bad_input(dofs, p):
    with pytest.raises(ConfigError):
        chi_sum_quantile(dofs, p)
