"""Scoring on a Dask LocalCluster gives the local results, in input order, and survives a
worker that dies mid-run."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import oddity
from oddity.distributed import dask_client, predict_on_cluster
from oddity.image.data import evaluation_samples

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this file


@pytest.fixture(scope="module")
def model(inspection_set, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dask") / "padim.oddity"
    oddity.create("padim", image_size=64, seed=0).fit(inspection_set, verbose=False).save(path)
    return str(path)


@pytest.fixture(scope="module")
def client():
    with dask_client("local:2") as client:
        yield client


def _assert_same(got, expected) -> None:
    """Same paths, order and labels; scores and maps equal to float32 rounding (a worker
    process runs torch with its own thread count, so sums may be added in another order)."""
    assert got.paths == expected.paths
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5)
    assert np.array_equal(got.labels, expected.labels)
    for a, b in zip(got.maps, expected.maps):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cluster_run_equals_the_local_run_in_input_order(client, model, inspection_set):
    samples = evaluation_samples(inspection_set)
    expected = oddity.load(model).predict(samples, verbose=False)
    _assert_same(predict_on_cluster(client, model, samples, partition_size=2, verbose=False), expected)


def _die_on_first_partition(marker: str) -> None:
    """Installed on the workers: the first partition any of them scores kills its process."""
    import oddity.distributed as distributed

    original = distributed.score_partition

    def dying(*args, **kwargs):
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the standard library's (public) way to end a process at once
        return original(*args, **kwargs)

    distributed.score_partition = dying


def test_a_killed_worker_has_its_partitions_run_again(client, model, inspection_set, tmp_path):
    samples = evaluation_samples(inspection_set)
    expected = oddity.load(model).predict(samples, verbose=False)
    marker = tmp_path / "killed"
    client.run(_die_on_first_partition, str(marker))
    got = predict_on_cluster(client, model, samples, partition_size=1, verbose=False)
    assert marker.exists()  # a worker did die
    _assert_same(got, expected)


def test_batch_relative_detectors_are_refused(client, tmp_path):
    path = tmp_path / "musc.oddity"
    oddity.create("musc", image_size=64).fit().save(path)
    with pytest.raises(oddity.OddityError, match="cannot be partitioned"):
        predict_on_cluster(client, str(path), [], verbose=False)
