"""Lighting benchmark: the worker scores normal test images under every shift, the table
reads the targets right, and results survive a write and read."""
from __future__ import annotations

import json

from oddity.bench.common import merging_writer, read_runs
from oddity.bench.lighting import UNSHIFTED, LightingRun, markdown_table, passes, subsample, worker
from oddity.image.photometric import SHIFTS


def test_worker_scores_every_shift(inspection_set):
    result = worker(str(inspection_set), "test-meandiff", {"image_size": 64}, 8, 3)
    assert set(result["shifts"]) == {UNSHIFTED, *SHIFTS}
    assert (result["fit_images"], result["normal_images"], result["defective_images"]) == (8, 3, 3)
    for values in result["shifts"].values():
        assert 0.0 <= values["fpr"] <= 1.0 and 0.0 <= values["image_auroc"] <= 1.0
    # a mean-difference model reads a 20% darker part as anomalous: more false positives
    assert result["shifts"]["brightness -20%"]["fpr"] >= result["shifts"][UNSHIFTED]["fpr"]
    json.dumps(result)  # travels from the child as JSON


def run(drop: float, fpr: float) -> LightingRun:
    shifts = {UNSHIFTED: {"fpr": 0.0, "image_auroc": 0.99}}
    shifts.update({name: {"fpr": fpr, "image_auroc": 0.99 - drop} for name in SHIFTS})
    return LightingRun("data/bottle", "padim", {"fit_jitter": 0.2}, shifts, target_fpr=0.01,
                       expected_fpr=0.05, fit_images=10, normal_images=20, defective_images=60, command="c")


def test_pass_rule_and_table(tmp_path):
    assert passes(run(0.015, 0.1)) and not passes(run(0.03, 0.0)) and not passes(run(0.0, 0.15))
    text = markdown_table([run(0.0, 0.0), run(0.1, 0.5)])
    assert "| bottle | padim | fit_jitter=0.2 | 10 / 20 / 60 | 0.01 / 0.05 | 0.00 / 0.990 |" in text
    assert text.count("| yes |") == 1 and text.count("| no |") == 1
    write = merging_writer(tmp_path, "lighting", LightingRun, markdown_table)
    write([run(0.0, 0.0)])
    write([run(0.1, 0.5)])  # the same key: re-measured, replaced
    assert read_runs(tmp_path, "lighting", LightingRun) == [run(0.1, 0.5)]
    assert subsample(list(range(10)), 4, seed=0) == subsample(list(range(10)), 4, seed=0)
    assert len(subsample(list(range(10)), 4, seed=0)) == 4 and subsample([1, 2], None, seed=0) == [1, 2]
