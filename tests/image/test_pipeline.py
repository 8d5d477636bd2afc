"""The scoring pipeline runs kernel calls one thread each, several at once: results do not
depend on how many run at once, and the caller's thread settings are left as they were."""
from __future__ import annotations

import numpy as np
import torch

import oddity
from oddity.image.data import evaluation_samples
from oddity.image.kernel import run_kernel
from oddity.image.pipeline import score_samples


def test_scores_do_not_depend_on_the_number_of_threads(inspection_set):
    detector = oddity.create("patchcore", image_size=64, seed=0).fit(inspection_set, verbose=False)
    samples = evaluation_samples(inspection_set)
    runs = [score_samples(detector.spec(), run_kernel(detector.kernel()), samples, batch_size=2,
                          verbose=False, threads=threads) for threads in (1, 3)]
    assert runs[0].paths == runs[1].paths == [s.name for s in samples]
    assert np.array_equal(runs[0].scores, runs[1].scores)
    assert all(np.array_equal(a, b) for a, b in zip(runs[0].maps, runs[1].maps))


def test_the_callers_torch_thread_count_is_kept(inspection_set):
    detector = oddity.create("padim", image_size=64, seed=0).fit(inspection_set, verbose=False)
    before = torch.get_num_threads()
    detector.score(evaluation_samples(inspection_set), verbose=False)
    assert torch.get_num_threads() == before
