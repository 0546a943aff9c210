"""Model directories for the serving tests: MiniLM's encoder under a fresh, seeded head."""
from pathlib import Path

import torch

from model_core.base_models import resolve_base_model
from model_core.checkpoint import load_pretrained_encoder, save_model
from model_core.config import ModelConfig
from model_core.model import Classifier
from model_core.tokenization import Tokenizer

LABELS = ["negative", "positive"]
MAX_LEN = 128


def make_minilm_classifier(out_dir: Path, seed: int) -> Path:
    """A HF-compatible directory; the head's weights are drawn large enough that labels differ between inputs."""
    base = resolve_base_model("minilm-l6")
    cfg = ModelConfig.from_json(base / "config.json")
    torch.manual_seed(seed)
    model = Classifier(cfg, len(LABELS))
    load_pretrained_encoder(model, base)
    with torch.no_grad():
        model.head.weight.normal_(0, 2.0)
    return save_model(out_dir, model, Tokenizer.from_dir(base), cfg, LABELS, max_len=MAX_LEN)

