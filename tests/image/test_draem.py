"""DRAEM learns to segment defects on generated data from simulated anomalies alone, trains
deterministically from a seed, survives save/load, and checks its parameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel

import oddity
from oddity.core.errors import ConfigError, ModelFileError
from oddity.core.torch_state import load_module_arrays, module_arrays
from oddity.image.data import evaluation_samples
from oddity.image.detectors import draem
from oddity.image.detectors.draem import DRAEM, averaged_networks, focal_loss, score_window, ssim

# Tiny settings for 9 training images of 64 px: narrow networks, whole images, batches of 4.
# At the defaults (lr 3e-4, weights averaged over the last 30 % of the steps) image / pixel AUROC
# were 1.00 / 0.955 after 50 steps (last weights: 0.54 / 0.89), 1.00 / 0.999 after 100 and 150
# (either); 100 steps take a few seconds.
TINY = {"image_size": 64, "seed": 0, "steps": 100, "recon_width": 8, "disc_width": 8,
        "batch_size": 4, "crop": None}


@pytest.fixture(scope="module")
def fitted(inspection_set):
    return oddity.create("draem", **TINY).fit(inspection_set, verbose=False)


def test_detects_synthetic_defects(fitted, inspection_set, aurocs):
    samples = evaluation_samples(inspection_set)
    result = fitted.predict(samples, verbose=False)
    image_auroc, pixel_auroc = aurocs(samples, result)
    assert image_auroc >= 0.85 and pixel_auroc >= 0.9
    assert result.masks[0].shape == result.maps[0].shape == (64, 64)
    assert fitted.losses_[-10:].mean() < 0.8 * fitted.losses_[:10].mean()


def test_image_score_is_the_max_of_the_mean_filtered_map(fitted):
    x = torch.rand(1, 3, 64, 80)  # sides not multiples of 32: padded and cropped back
    with torch.inference_mode():
        scores, maps = fitted.kernel()(x)
    score, anomaly_map = float(scores[0]), maps[0].numpy()
    assert anomaly_map.shape == (64, 80) and 0.0 <= anomaly_map.min() <= anomaly_map.max() <= 1.0
    window = score_window(fitted.image_size)
    assert window == 5  # the paper's 21 px at 256 px, scaled to 64 px and kept odd
    pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(anomaly_map)[None, None], window,
                                            stride=1, padding=window // 2, count_include_pad=False)
    assert score == pytest.approx(float(pooled.max()), abs=1e-6)
    assert score <= anomaly_map.max() + 1e-6


def test_save_load_gives_identical_scores(fitted, inspection_set, reloaded):
    loaded = reloaded(fitted, evaluation_samples(inspection_set))
    np.testing.assert_array_equal(loaded.losses_, fitted.losses_)


def test_training_is_deterministic_under_a_seed(inspection_set):
    samples = evaluation_samples(inspection_set)[:4]
    short = {**TINY, "steps": 4, "crop": 32}  # crops drawn from the seed too

    def fit(seed):
        return oddity.create("draem", **{**short, "seed": seed}).fit(inspection_set, verbose=False)

    first, again, other = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(first.losses_, again.losses_)
    np.testing.assert_array_equal(first.score(samples, verbose=False).scores,
                                  again.score(samples, verbose=False).scores)
    assert not np.array_equal(first.losses_, other.losses_)



def test_average_from_fits_the_mean_of_the_weights_over_the_end_of_training(monkeypatch):
    images = [np.random.default_rng(i).random((64, 64, 3), dtype=np.float32) for i in range(3)]
    tiny = {**TINY, "steps": 8, "calibration_fraction": 0.0}
    averaged_weights, batchnorm_batches = [], []
    update = AveragedModel.update_parameters

    def recording_update(self, model):
        averaged_weights.append(model.discriminative.head.weight.detach().clone())
        update(self, model)

    def recording_average(average, batches):
        batchnorm_batches.extend(batches)
        return averaged_networks(average, batchnorm_batches)

    monkeypatch.setattr(AveragedModel, "update_parameters", recording_update)
    monkeypatch.setattr(draem, "averaged_networks", recording_average)
    last = DRAEM(**tiny, average_from=None).fit(images, verbose=False)
    assert not averaged_weights  # no averaging without average_from
    averaged = DRAEM(**tiny, average_from=0.5).fit(images, verbose=False)
    # Same training run (averaging draws nothing from the training stream), fitted weights =
    # the uniform average of the weights after steps 5..8, BatchNorm statistics re-estimated.
    np.testing.assert_array_equal(averaged.losses_, last.losses_)
    assert len(averaged_weights) == 4
    torch.testing.assert_close(averaged.discriminative_.head.weight, torch.stack(averaged_weights).mean(0))
    assert not torch.equal(averaged.discriminative_.head.weight, last.discriminative_.head.weight)
    conv, batchnorm = averaged.reconstructive_.encoder[0][:2]  # first layer: mean of its outputs
    with torch.inference_mode():
        means = [conv(batch).mean((0, 2, 3)) for batch in batchnorm_batches]
    torch.testing.assert_close(batchnorm.running_mean, torch.stack(means).mean(0))
    assert not averaged.discriminative_.training and not averaged.reconstructive_.training
    x = torch.from_numpy(images[0]).permute(2, 0, 1)[None]
    with torch.inference_mode():
        assert averaged.kernel()(x)[0][0] != last.kernel()(x)[0][0]


def test_ssim_and_focal_loss():
    a = torch.rand(2, 3, 24, 24)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(a, torch.rand(2, 3, 24, 24))) < 0.2
    # Focal loss: -(1 - p)^2 log p of the true class; confident right answers cost ~nothing.
    logits = torch.tensor([[0.0, 2.0]])[:, :, None, None]  # p(anomalous) = sigmoid(2)
    p = float(torch.sigmoid(torch.tensor(2.0)))
    assert float(focal_loss(logits, torch.ones(1, 1, 1))) == pytest.approx(-(1 - p) ** 2 * np.log(p), rel=1e-5)
    assert float(focal_loss(logits, torch.zeros(1, 1, 1))) == pytest.approx(-p**2 * np.log(1 - p), rel=1e-5)


@pytest.mark.parametrize("params", [
    {"steps": 0}, {"recon_width": 0}, {"disc_width": 2.5}, {"batch_size": -1}, {"lr": 0},
    {"crop": 16}, {"crop": 48.0}, {"steps": True}, {"average_from": 1.0}, {"average_from": -0.1},
    {"average_from": True},
])
def test_bad_parameters_are_config_errors(params):
    detector = DRAEM(**params)  # the constructor only stores them
    with pytest.raises(ConfigError):
        detector.validate_params()


def test_detector_is_registered():
    assert "draem" in oddity.list_detectors()


def test_networks_that_do_not_fit_the_model_file_are_model_file_errors():
    arrays = module_arrays({"reconstructive": torch.nn.Conv2d(3, 4, 3)})
    load_module_arrays({"reconstructive": torch.nn.Conv2d(3, 4, 3)}, arrays, "recon_width=4")
    with pytest.raises(ModelFileError, match="reconstructive network does not fit recon_width=8"):
        load_module_arrays({"reconstructive": torch.nn.Conv2d(3, 8, 3)}, arrays, "recon_width=8")
