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
from oddity.distributed import load_on_workers, predict_on_cluster
from oddity.image.data import evaluation_samples

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this file


@pytest.fixture(scope="module")
def model(inspection_set, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dask") / "padim.oddity"
    oddity.create("padim", image_size=64, seed=0).fit(inspection_set, verbose=False).save(path)
    return str(path)


def _assert_same(got, expected) -> None:
    """Same paths, order, labels, scores and maps, bit for bit: every engine call runs on one
    thread, in a worker as in process, and partitions hold whole batches."""
    assert got.paths == expected.paths
    assert np.array_equal(got.scores, expected.scores)
    assert np.array_equal(got.labels, expected.labels)
    assert all(np.array_equal(a, b) for a, b in zip(got.maps, expected.maps))


def test_cluster_run_equals_the_local_run_in_input_order(client, model, inspection_set):
    samples = evaluation_samples(inspection_set)
    expected = oddity.load(model).predict(samples, verbose=False, batch_size=2)
    got = predict_on_cluster(client, model, samples, partition_size=4, batch_size=2, verbose=False)
    _assert_same(got, expected)


def _die_on_first_partition(marker: str) -> None:
    """Installed on the workers: the first partition any of them scores kills its process."""
    import oddity.distributed.predict as distributed

    original = distributed.score_partition

    def dying(*args, **kwargs):
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the standard library's (public) way to end a process at once
        return original(*args, **kwargs)

    distributed.score_partition = dying


def test_a_killed_worker_has_its_partitions_run_again(client, model, inspection_set, tmp_path):
    samples = evaluation_samples(inspection_set)
    expected = oddity.load(model).predict(samples, verbose=False, batch_size=1)
    marker = tmp_path / "killed"
    client.run(_die_on_first_partition, str(marker))
    got = predict_on_cluster(client, model, samples, partition_size=1, batch_size=1, verbose=False)
    assert marker.exists()  # a worker did die
    _assert_same(got, expected)


def test_the_model_is_loaded_once_per_worker(client, model):
    client.wait_for_workers(2)  # a worker killed by another test is back
    load_on_workers(client, model)
    first = client.run(_cached_model_id, model)
    assert len(first) == 2 and first == client.run(_cached_model_id, model)


def _cached_model_id(path: str) -> int:
    from oddity.distributed.cluster import worker_model

    return id(worker_model(os.path.abspath(path)))


def _environment(name: str) -> str | None:
    return os.environ.get(name)


def test_local_workers_keep_the_glibc_memory_settings(client):
    # Dask's nanny would start them with MALLOC_TRIM_THRESHOLD_=65536: every activation array
    # of the backbone mapped and zero-filled afresh, about twice the CPU time per image
    assert set(client.run(_environment, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
    assert set(client.run(_environment, "OMP_NUM_THREADS").values()) == {"1"}


def test_partitions_must_hold_whole_batches(client, model, inspection_set):
    with pytest.raises(oddity.OddityError, match="multiple of the batch size"):
        predict_on_cluster(client, model, evaluation_samples(inspection_set), partition_size=12,
                           batch_size=8, verbose=False)


def test_batch_relative_detectors_are_refused(client, tmp_path):
    path = tmp_path / "musc.oddity"
    oddity.create("musc", image_size=64).fit().save(path)
    with pytest.raises(oddity.OddityError, match="cannot be partitioned"):
        predict_on_cluster(client, str(path), [], verbose=False)
