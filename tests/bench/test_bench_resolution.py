"""The resolution validation paints small defects where it says and tabulates its runs."""
from __future__ import annotations

import numpy as np
import pytest

from oddity.bench.resolution import DEFECT_WINDOW, ResolutionRun, markdown_table, small_defect


@pytest.mark.parametrize("index", [0, 1, 2])
def test_small_defect_changes_only_its_mask_inside_one_window(index):
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.uniform(0.3, 0.7, (512, 640, 1)), 3, axis=2).astype(np.float32)
    defective, mask = small_defect(grey, index)
    assert mask.shape == (512, 640) and mask.any()
    rows, cols = np.nonzero(mask)
    assert np.ptp(rows) < DEFECT_WINDOW and np.ptp(cols) < DEFECT_WINDOW
    assert rows.min() >= 0.2 * 512 and cols.min() >= 0.2 * 640
    changed = np.any(defective != grey, axis=2)
    assert not changed[~mask].any() and changed[mask].mean() > 0.5
    assert np.allclose(defective[..., 0], defective[..., 1])  # a grey part gets a grey defect
    again, _ = small_defect(grey, index)
    assert np.array_equal(again, defective)  # fixed by the index


def test_markdown_table_has_one_row_per_run():
    runs = [ResolutionRun("bottle", "patchcore", {"image_size": 384}, factor=2, input_size=384,
                          synth_image_auroc=0.9, images_per_second=3.0, cpu_ms_per_image=420.0,
                          counts={"fit": 30, "synth": 20, "real": 20}),
            ResolutionRun("bottle", "padim", {}, error="timed out after 10 s")]
    table = markdown_table(runs).splitlines()
    assert len(table) == 4 and "| 384 | 0.900 |" in table[2] and "timed out" in table[3]
