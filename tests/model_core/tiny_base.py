"""A tiny random BERT base-model directory (HF layout) and a small separable sentiment task,
so that trainer and CLI tests run in seconds on CPU."""
from __future__ import annotations

import random
from pathlib import Path

import torch

from model_core.checkpoint import save_model
from model_core.config import ModelConfig
from model_core.data import Example
from model_core.model import Classifier
from model_core.tokenization import Tokenizer

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
FILLER = ["the", "movie", "film", "plot", "was", "really", "a", "very", "and", "it", "actors", "story"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_CONFIG = ModelConfig(dim=32, dim_ff=64, n_layers=2, n_heads=4, p_drop_attn=0.1, p_drop_hidden=0.1,
                          max_len=64, n_segments=2, vocab_size=len(SPECIALS + POSITIVE + NEGATIVE + FILLER))


def make_tiny_base(directory: Path) -> Path:
    """Writes config.json, vocab.txt and model.safetensors of a seeded random 2-layer BERT."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIALS + POSITIVE + NEGATIVE + FILLER)}
    torch.manual_seed(1234)
    model = Classifier(TINY_CONFIG, 2)  # its head is ignored when used as a base model
    save_model(directory, model, Tokenizer(vocab), TINY_CONFIG, ["x", "y"])
    return directory


def sentiment_examples(n: int, seed: int) -> list[Example]:
    """Short sentences labeled "pos"/"neg" by which kind of adjective they contain."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(FILLER, k=rng.randint(1, 8)) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        examples.append(Example(" ".join(words), None, label))
    return examples


def write_tsv(path: Path, examples: list[Example]) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{e.label}\t{e.text}\n" for e in examples), encoding="utf-8")
    return path
