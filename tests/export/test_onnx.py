"""ONNX export: every detector with a scoring graph exports behind its parity gate, and the
exported model predicts what the model file predicts, with onnxruntime and without torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import oddity
from oddity.cli import main
from oddity.core.errors import ExportError
from oddity.export.engine import ExportedModel
from oddity.export.onnx import export_onnx
from oddity.image.data import evaluation_samples

QUICK = {"image_size": 64, "seed": 0}
EXPORTABLE = {
    "patchcore": {},
    "padim": {},
    "gaussian_ad": {"layers": ["stage3", "stage5"]},
    "simplenet": {"epochs": 2, "hidden": 64},
    "efficientad": {"width": 8, "ae_width": 8, "steps": 4, "distill_steps": 2, "distill_batch": 2,
                    "generic_images": 2},
    "draem": {"steps": 4, "recon_width": 4, "disc_width": 4, "average_from": None},
}


@pytest.fixture(scope="module", params=sorted(EXPORTABLE))
def fitted(request, inspection_set):
    return oddity.create(request.param, **QUICK, **EXPORTABLE[request.param]).fit(inspection_set, verbose=False)


def test_export_passes_the_gate_and_predicts_like_the_model(fitted, inspection_set, tmp_path):
    metadata = export_onnx(fitted, tmp_path / "export", verbose=False)
    assert (tmp_path / "export" / "model.onnx").is_file()
    assert json.loads((tmp_path / "export" / "metadata.json").read_text())["detector"] == fitted.name
    gate = metadata["parity"]
    assert gate["images"] == len(fitted.calibration_images_) and gate["labels_identical"]
    assert gate["max_score_difference"] <= 1e-4
    samples = evaluation_samples(inspection_set)
    expected = fitted.predict(samples, verbose=False)
    got = ExportedModel(tmp_path / "export").predict(samples, verbose=False)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-4 * abs(expected.threshold))
    decided = np.abs(expected.scores - expected.threshold) > 1e-4 * abs(expected.threshold)  # not a tie
    assert np.array_equal(got.labels[decided], expected.labels[decided]) and got.paths == expected.paths
    assert got.threshold == expected.threshold
    if expected.maps is None:
        assert got.maps is None and got.masks is None
    else:
        for a, b in zip(got.maps, expected.maps):
            np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, abs(expected.pixel_threshold)))


def test_kernel_scores_a_batch_as_it_scores_each_image(fitted):
    kernel = fitted.kernel()
    batch = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        scores, maps = kernel(batch)
        alone = [kernel(batch[i:i + 1]) for i in range(3)]
    assert scores.shape == (3,) and maps.shape[0] == 3
    torch.testing.assert_close(scores, torch.cat([s for s, _ in alone]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps, torch.cat([m for _, m in alone]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("border_rings", [0, 4])  # Eq. 7 re-weighting, border standardisation
def test_patchcore_faiss_and_matrix_product_search_give_the_same_scores(inspection_set, border_rings):
    detector = oddity.create("patchcore", border_rings=border_rings, **QUICK).fit(inspection_set, verbose=False)
    in_process, portable = detector.kernel(), detector.kernel(portable=True)
    assert in_process.scorer.search.index is not None and portable.scorer.search.index is None
    batch = torch.rand(4, 3, 64, 64)
    with torch.inference_mode():
        (faiss_scores, faiss_maps), (graph_scores, graph_maps) = in_process(batch), portable(batch)
    torch.testing.assert_close(graph_scores, faiss_scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(graph_maps, faiss_maps, rtol=1e-5, atol=1e-5)


def test_musc_is_refused_with_the_reason(tmp_path):
    detector = oddity.create("musc", image_size=64).fit()
    with pytest.raises(ExportError, match="against the other images of the batch"):
        export_onnx(detector, tmp_path / "export", images=[str(tmp_path)], verbose=False)
    assert not (tmp_path / "export").exists()


def test_a_graph_that_drifted_from_the_model_is_refused(inspection_set, tmp_path, monkeypatch):
    # Held-out calibration: the gate measures differences relative to the larger of the score
    # and the threshold, and a cross-fitted threshold on 12 images lies far above the scores.
    detector = oddity.create("padim", calibration="holdout", **QUICK).fit(inspection_set, verbose=False)
    original = type(detector).kernel

    class Drifted(torch.nn.Module):
        def __init__(self, scorer):
            super().__init__()
            self.scorer = scorer

        def forward(self, x):
            scores, maps = self.scorer(x)
            return scores * 1.001, maps * 1.001

    monkeypatch.setattr(type(detector), "kernel", lambda self, portable=False:
                        Drifted(original(self, portable)) if portable else original(self, portable))
    with pytest.raises(ExportError, match="parity gate failed"):
        export_onnx(detector, tmp_path / "export", verbose=False)
    assert not (tmp_path / "export").exists()


def test_int8_export_has_its_own_gate(inspection_set, tmp_path):
    detector = oddity.create("simplenet", **QUICK, **EXPORTABLE["simplenet"]).fit(inspection_set, verbose=False)
    try:
        metadata = export_onnx(detector, tmp_path / "export", quantize="int8", verbose=False)
    except ExportError as exc:  # int8 may move a label: then nothing is written
        assert "int8 gate failed" in str(exc) and not (tmp_path / "export").exists()
        return
    assert metadata["quantized"]["parity"]["labels_identical"]
    prediction = ExportedModel(tmp_path / "export" / "model.int8.onnx").predict(
        evaluation_samples(inspection_set), verbose=False)
    assert len(prediction.scores) == len(evaluation_samples(inspection_set))


def test_cli_export_then_predict_without_torch(inspection_set, tmp_path, capsys):
    model, export = tmp_path / "m.oddity", tmp_path / "export"
    assert main(["fit", "patchcore", "--data", str(inspection_set), "--out", str(model),
                 "--image-size", "64", "--quiet"]) == 0
    assert main(["export", str(model), "--out", str(export), "--quiet"]) == 0
    assert "labels identical" in capsys.readouterr().out
    assert main(["predict", str(model), str(inspection_set / "test"), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    script = ("import sys; from oddity.cli import main; "
              f"code = main(['predict', {str(export)!r}, {str(inspection_set / 'test')!r}, '--out', "
              f"{str(tmp_path / 'b')!r}, '--quiet']); "
              "assert code == 0, code; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(Path(oddity.__file__).parents[1]), "OMP_WAIT_POLICY": "PASSIVE"})
    assert done.returncode == 0, done.stderr
    in_process = (tmp_path / "a" / "scores.csv").read_text().splitlines()
    exported = (tmp_path / "b" / "scores.csv").read_text().splitlines()
    assert [row.split(",")[2] for row in exported] == [row.split(",")[2] for row in in_process]  # labels
    a = np.array([float(row.split(",")[1]) for row in in_process[1:]])
    b = np.array([float(row.split(",")[1]) for row in exported[1:]])
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_export_refuses_images_of_several_input_shapes(inspection_set, tmp_path):
    from PIL import Image

    detector = oddity.create("patchcore", **QUICK).fit(inspection_set, verbose=False)
    Image.new("RGB", (64, 64)).save(tmp_path / "square.png")
    Image.new("RGB", (128, 64)).save(tmp_path / "wide.png")
    with pytest.raises(ExportError, match="several shapes"):
        export_onnx(detector, tmp_path / "export", images=[str(tmp_path)], verbose=False)


def test_a_threshold_set_by_hand_is_exported_and_read_back(inspection_set, tmp_path):
    detector = oddity.create("padim", **QUICK).fit(inspection_set, verbose=False)
    detector.set_threshold(float(np.median(detector.predict(evaluation_samples(inspection_set),
                                                             verbose=False).scores)))
    export_onnx(detector, tmp_path / "export", verbose=False)
    metadata = json.loads((tmp_path / "export" / "metadata.json").read_text())  # standard JSON
    assert metadata["thresholds"]["image"]["target_fpr"] is None
    exported = ExportedModel(tmp_path / "export")
    assert exported.threshold.value == detector.threshold_.value and exported.threshold.method == "manual"
    assert np.isnan(exported.threshold.target_fpr)
