"""Model directories for the serving tests (and bench/serving.py): MiniLM's encoder under a fresh, seeded head,
registered in the store the way a finished job registers its model."""
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from sqlalchemy.orm import Session

from app.db import store
from app.db.models import Job
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


def register_model_dir(session_factory: Callable[[], Session], model_dir: Path, deploy: bool = False) -> str:
    """Registers `model_dir` (named by its model id) under a succeeded job; returns the model id."""
    with session_factory() as session:
        job = Job(base_model="minilm-l6", status="succeeded", hyperparameters={}, metrics={"eval_accuracy": 0.5})
        session.add(job)
        session.flush()
        model_id = store.register_model(session, job, model_dir).id
        session.commit()
        if deploy:
            store.deploy_model(session, model_id)
        return model_id


def new_model_dir(artifact_dir: Path) -> Path:
    """Where a model lives: ARTIFACT_DIR/models/<model_id>/."""
    return artifact_dir / "models" / uuid.uuid4().hex

