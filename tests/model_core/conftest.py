"""Fixtures for model_core tests: the real MiniLM checkpoint, a MiniLM classifier with a seeded
random head saved as a Hugging Face directory (both from tests/factories.py), and transformers' reference model
and tokenizer."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_core.base_models import resolve_base_model
from model_core.config import ModelConfig
from model_core.model import Classifier
from model_core.tokenization import Tokenizer
from tests.factories import minilm_with_random_head, save_minilm_classifier

LABELS = ["negative", "neutral", "positive"]
FINETUNE_MAX_LEN = 64

# a padded batch mixing single inputs and pairs, one of them long enough to be truncated
TEXTS = ["a gripping, beautifully shot film", "dull", "Héllo wörld 中文 😀 " * 30, "is it worth it?", ""]
PAIRS = [None, "the plot never takes off", "and the pair is truncated too " * 10, None, "only a pair"]


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return resolve_base_model("minilm-l6")


@pytest.fixture(scope="session")
def minilm_cfg(minilm_dir) -> ModelConfig:
    return ModelConfig.from_json(minilm_dir / "config.json")


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_dir) -> Tokenizer:
    return Tokenizer.from_dir(minilm_dir)


@pytest.fixture(scope="session")
def minilm_classifier() -> Classifier:
    """MiniLM encoder + pooler with a seeded random head, large enough that probabilities differ."""
    return minilm_with_random_head(len(LABELS), seed=0, head_std=0.5, bias_std=0.5)


@pytest.fixture(scope="session")
def minilm_mean_classifier() -> Classifier:
    """MiniLM's encoder with a seeded random head, pooling mean (no pooler)."""
    return minilm_with_random_head(len(LABELS), seed=0, head_std=0.5, bias_std=0.5, pooling="mean")


@pytest.fixture(scope="session")
def saved_classifier_dir(tmp_path_factory, minilm_classifier) -> Path:
    out = tmp_path_factory.mktemp("minilm-classifier") / "model"
    return save_minilm_classifier(out, minilm_classifier, LABELS, FINETUNE_MAX_LEN)


@pytest.fixture(scope="session")
def saved_mean_classifier_dir(tmp_path_factory, minilm_mean_classifier) -> Path:
    out = tmp_path_factory.mktemp("minilm-mean-classifier") / "model"
    return save_minilm_classifier(out, minilm_mean_classifier, LABELS, FINETUNE_MAX_LEN)


@pytest.fixture(scope="session")
def hf_classifier(saved_classifier_dir):
    """transformers' BertForSequenceClassification loaded, unchanged, from our saved directory."""
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification.from_pretrained(saved_classifier_dir).eval()


@pytest.fixture(scope="session")
def hf_tokenizer(saved_classifier_dir):
    """transformers' BertTokenizerFast built from the saved vocab.txt and tokenizer_config.json."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(saved_classifier_dir)


@pytest.fixture(scope="session")
def hf_logits(hf_classifier, hf_tokenizer) -> torch.Tensor:
    """Reference logits for TEXTS/PAIRS, one input at a time (no padding involved)."""
    rows = []
    with torch.no_grad():
        for text, pair in zip(TEXTS, PAIRS, strict=True):
            batch = hf_tokenizer(text, pair, truncation=True, max_length=FINETUNE_MAX_LEN, return_tensors="pt")
            rows.append(hf_classifier(**batch).logits[0])
    return torch.stack(rows)
