"""Fit (features on the workers, learning here) and eval (scores on the workers, metrics here)
on a Dask LocalCluster of worker processes give the local results."""
from __future__ import annotations

import numpy as np
import pytest

import oddity
from oddity.distributed import dask_client, fit_on_cluster, score_on_cluster
from oddity.image.data import training_samples
from oddity.image.evaluate import evaluate


def test_a_fit_on_worker_processes_equals_the_local_fit(client, inspection_set, capsys):
    params = {"image_size": 64, "seed": 0, "fit_jitter": 0.1}  # jitter: draws continue across partitions
    local = oddity.create("patchcore", **params).fit(inspection_set, verbose=False)
    remote = fit_on_cluster(client, oddity.create("patchcore", **params), training_samples(inspection_set),
                            partition_size=3)
    assert "fit patchcore (partitions)" in capsys.readouterr().err
    assert np.array_equal(remote.memory_bank_, local.memory_bank_)  # bit for bit (tested here)
    assert remote.threshold_ == local.threshold_ and remote.pixel_threshold_ == local.pixel_threshold_
    assert remote.map_range_ == local.map_range_ and remote.feature_source is None


def test_a_fixed_shape_detector_fits_on_the_cluster_as_here(client, inspection_set):
    """PaDiM: the workers need the input shape and the seeded channel choice of the fit."""
    params = {"image_size": 64, "seed": 3, "calibration": "holdout"}
    local = oddity.create("padim", **params).fit(inspection_set, verbose=False)
    remote = fit_on_cluster(client, oddity.create("padim", **params), inspection_set, partition_size=4,
                            verbose=False)
    assert remote.input_shape_ == local.input_shape_
    assert np.array_equal(remote.channels_, local.channels_)
    assert np.array_equal(remote.mean_.numpy(), local.mean_.numpy())
    assert np.array_equal(remote.whitening_.numpy(), local.whitening_.numpy())
    assert remote.threshold_ == local.threshold_ and remote.pixel_threshold_ == local.pixel_threshold_


def test_eval_on_the_cluster_equals_the_local_eval(client, inspection_set, tmp_path):
    path = tmp_path / "gaussian.oddity"
    oddity.create("gaussian_ad", image_size=64, seed=0).fit(inspection_set, verbose=False).save(path)
    detector = oddity.load(path)
    expected = evaluate(detector, inspection_set, verbose=False)
    got = evaluate(detector, inspection_set, verbose=False,
                   scorer=lambda samples: score_on_cluster(client, str(path), samples, verbose=False))
    assert np.array_equal(got.scores, expected.scores) and got.paths == expected.paths
    drop = ("images_per_second", "seconds")
    assert {k: v for k, v in got.metrics.items() if k not in drop} == \
        {k: v for k, v in expected.metrics.items() if k not in drop}


def test_detectors_that_train_networks_are_refused(client, inspection_set):
    with pytest.raises(oddity.OddityError, match="cannot fit on Dask.*patchcore"):
        fit_on_cluster(client, oddity.create("simplenet", image_size=64), inspection_set, verbose=False)


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(oddity.OddityError, match="tcp://127.0.0.1:9: no Dask scheduler answered within 1 s"), \
            dask_client("tcp://127.0.0.1:9", timeout=1):
        pass
