"""Fit, predict and evaluate on a Dask cluster (`dask.distributed`): the same pipeline, partitioned.

- `oddity.distributed.cluster`: the client (`local:N` or `tcp://HOST:PORT`), models loaded once
  per worker process, partitions gathered in input order under a progress bar.
- `oddity.distributed.predict`: scoring (`score_on_cluster`, `predict_on_cluster`) and
  `predict_to_folder`, where each worker writes its images' overlays and masks into the
  prediction folder's staging area and only scores and labels travel back.
- `oddity.distributed.fit`: `fit_on_cluster`, where workers extract the training features and
  the learning step (memory bank, coreset, Gaussians) stays central.

Evaluation scores on the cluster (`score_on_cluster`) and computes the metrics centrally
(`oddity.image.evaluate.evaluate` with `scorer=`). See docs/deploy.md.
"""
from oddity.distributed.cluster import dask_client, load_on_workers, worker_model
from oddity.distributed.fit import fit_on_cluster
from oddity.distributed.predict import (
           predict_on_cluster,
           predict_to_folder,
           score_on_cluster,
)

__all__ = ["dask_client", "fit_on_cluster", "load_on_workers", "predict_on_cluster", "predict_to_folder",
           "score_on_cluster", "worker_model"]
