"""PatchCore's exact bank search inside the scoring graph: the nearest bank row over several
chunks of the bank, equal to a float64 brute force and to faiss, and an exported graph whose
zero paddings onnxruntime can fuse into the convolutions."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import torch

import oddity
from oddity.export.onnx import export_onnx
from oddity.image.detectors.patchcore import BANK_CHUNK, BankSearch


def test_search_over_several_chunks_finds_the_nearest_row_as_faiss_does():
    import faiss

    rng = np.random.default_rng(0)
    bank = rng.normal(size=(2 * BANK_CHUNK + 37, 24)).astype(np.float32) + 3.0
    queries = bank[rng.integers(0, len(bank), 300)] + 0.3 * rng.normal(size=(300, 24)).astype(np.float32)
    exact = ((queries[:, None, :].astype(np.float64) - bank[None].astype(np.float64)) ** 2).sum(axis=2)
    with torch.inference_mode():
        distances, nearest = BankSearch(torch.from_numpy(bank))(torch.from_numpy(queries))
    np.testing.assert_array_equal(nearest.numpy(), exact.argmin(axis=1))
    np.testing.assert_allclose(distances.numpy(), np.sqrt(exact.min(axis=1)), rtol=1e-5)
    assert (exact.argmin(axis=1) >= BANK_CHUNK).any()  # the later chunks do win
    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(bank)
    with torch.inference_mode():
        by_faiss, _ = BankSearch(torch.from_numpy(bank), index)(torch.from_numpy(queries))
    np.testing.assert_allclose(distances.numpy(), by_faiss.numpy(), rtol=1e-5)


def test_exported_patchcore_graph_has_its_paddings_fused(inspection_set, tmp_path):
    detector = oddity.create("patchcore", image_size=64, seed=0).fit(inspection_set, verbose=False)
    export_onnx(detector, tmp_path / "export", verbose=False)
    graph = onnx.load(str(tmp_path / "export" / "model.onnx"))
    pads = [node for node in graph.graph.node if node.op_type == "Pad"]
    assert pads and all(node.input[-1] for node in graph.graph.node if node.input)  # none ends empty
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(tmp_path / "export" / "model.onnx"), options,
                                 providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert not [node for node in optimized.graph.node if node.op_type == "Pad"]
