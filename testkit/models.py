"""The tiny model shape, and a tiny random BERT base model written by transformers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from model_core.config import ModelConfig


def tiny_model_config(vocab_size: int, max_len: int = 64, n_heads: int = 4) -> ModelConfig:
    """The shape of every tiny model of the tests and benchmarks: 2 layers, 32 dims, 64 feed-forward units."""
    return ModelConfig(dim=32, dim_ff=64, n_layers=2, n_heads=n_heads, max_len=max_len, vocab_size=vocab_size)


def make_tiny_bert(out: Path) -> Path:
    """A randomly initialised tiny BERT (2 heads) with MiniLM's vocabulary, saved by transformers as a Hugging
    Face directory: a base model any English text can be trained on in seconds."""
    from transformers import BertConfig, BertModel

    from model_core.base_models import resolve_base_model

    out.mkdir(parents=True, exist_ok=True)
    vocab = resolve_base_model("minilm-l6") / "vocab.txt"
    shutil.copy(vocab, out / "vocab.txt")
    shape = tiny_model_config(len(vocab.read_text(encoding="utf-8").splitlines()), n_heads=2)
    config = BertConfig(vocab_size=shape.vocab_size, hidden_size=shape.dim, num_hidden_layers=shape.n_layers,
                        num_attention_heads=shape.n_heads, intermediate_size=shape.dim_ff,
                        max_position_embeddings=shape.max_len)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return out
