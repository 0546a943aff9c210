"""The factories of the tests, each defined once: tiny model configs and job hyperparameters, tiny base-model
directories, MiniLM classifiers with seeded random heads and their saved directories, data files, and served apps
with classifiers registered. The conftest fixtures call them. What the benchmarks build as well is defined in
testkit/ and re-exported here (make_tiny_bert, tiny_model_config, write_sst2)."""
from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

from app.db.session import make_session_factory
from app.main import create_app
from app.settings import Settings
from model_core.base_models import resolve_base_model
from model_core.checkpoint import load_pretrained_encoder, save_model
from model_core.config import MULTI_LABEL, SINGLE_LABEL, ModelConfig, Pooling, TrainConfig
from model_core.data import AnyExample, Example, MultiLabelExample
from model_core.model import Classifier
from model_core.tokenization import Tokenizer
from model_core.train import finetune
from testkit.data import write_sst2
from testkit.models import make_tiny_bert, tiny_model_config
from testkit.store import register_copy, sqlite_settings_for

__all__ = [
    "TINY_HYPERPARAMETERS", "ServingApp", "make_tiny_base", "make_tiny_bert", "minilm_with_random_head",
    "save_minilm_classifier", "sentiment_examples", "serving_app", "swapped_labels", "tiny_model_config",
    "topic_examples", "train_sentiment_model", "write_sst2", "write_tsv",
]

# the API's hyperparameters of a job on the tiny BERT (make_tiny_bert) that trains in seconds
TINY_HYPERPARAMETERS = {"epochs": 2, "batch_size": 8, "max_len": 32, "learning_rate": 1e-3}

# a small separable sentiment task and the 22-token vocabulary of make_tiny_base
POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
FILLER = ["the", "movie", "film", "plot", "was", "really", "a", "very", "and", "it", "actors", "story"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_VOCAB = SPECIALS + POSITIVE + NEGATIVE + FILLER
# a small multi-label task on the same vocabulary: each adjective stands for a set of labels, none for "fine"
ADJECTIVE_LABELS = {"good": ("pos",), "lovely": ("pos",), "great": ("pos", "strong"), "superb": ("pos", "strong"),
                    "fine": (), "bad": ("neg",), "poor": ("neg",), "dull": ("neg",), "boring": ("neg",),
                    "awful": ("neg", "strong")}


def make_tiny_base(directory: Path) -> Path:
    """A seeded random tiny BERT over TINY_VOCAB, saved by model_core (config.json, vocab.txt,
    model.safetensors): trainer and CLI tests on sentiment_examples run in seconds on CPU."""
    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_model_config(len(TINY_VOCAB))
    torch.manual_seed(1234)
    model = Classifier(config, 2)  # its head is ignored when used as a base model
    save_model(directory, model, Tokenizer({token: i for i, token in enumerate(TINY_VOCAB)}), config, ["x", "y"])
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


def swapped_labels(examples: list[Example]) -> list[Example]:
    """sentiment_examples with "pos" and "neg" swapped: corrupted labels a model learns to answer wrongly."""
    return [Example(e.text, e.text_pair, "neg" if e.label == "pos" else "pos") for e in examples]


def train_sentiment_model(tiny_base: Path, out_dir: Path, corrupted: bool = False) -> Path:
    """A classifier of make_tiny_base trained in seconds on 48 sentiment_examples (their labels swapped when
    `corrupted`: then it answers the opposite of the truth), evaluated on 16 others; its saved directory."""
    train = sentiment_examples(48, seed=0)
    cfg = TrainConfig(epochs=12, batch_size=8, learning_rate=3e-3, max_len=16, seed=3)
    return finetune(swapped_labels(train) if corrupted else train, sentiment_examples(16, seed=1), tiny_base, out_dir,
                    cfg, labels=["pos", "neg"], device="cpu").model_dir


def topic_examples(n: int, seed: int) -> list[MultiLabelExample]:
    """Short sentences like sentiment_examples' with one adjective, labeled with its ADJECTIVE_LABELS: no label,
    one or two of "neg", "pos" and "strong". A multi-label task the tiny base learns in seconds."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        adjective = rng.choice(list(ADJECTIVE_LABELS))
        words = rng.choices(FILLER, k=rng.randint(1, 8)) + [adjective]
        rng.shuffle(words)
        examples.append(MultiLabelExample(" ".join(words), None, ADJECTIVE_LABELS[adjective]))
    return examples


def write_tsv(path: Path, examples: list[AnyExample]) -> Path:
    """A label + text TSV; a multi-label example's labels joined by ","."""
    path.write_text("label\ttext\n" + "".join(f"{','.join(e.labels)}\t{e.text}\n" for e in examples),
                    encoding="utf-8")
    return path


def minilm_with_random_head(n_labels: int, seed: int, head_std: float, bias_std: float = 0.0,
                            pooling: Pooling = "cls") -> Classifier:
    """MiniLM's encoder (and pooler, pooling cls) under a head seeded by `seed`, its weights (and, given bias_std, its
    biases) drawn large enough that probabilities differ between inputs; in eval mode."""
    base = resolve_base_model("minilm-l6")
    torch.manual_seed(seed)
    model = Classifier(ModelConfig.from_json(base / "config.json"), n_labels, pooling)
    load_pretrained_encoder(model, base)
    with torch.no_grad():
        model.head.weight.normal_(0.0, head_std)
        if bias_std:
            model.head.bias.normal_(0.0, bias_std)
    return model.eval()


def save_minilm_classifier(out_dir: Path, model: Classifier, labels: list[str], max_len: int,
                           thresholds: dict[str, float] | None = None) -> Path:
    """`model` (a MiniLM classifier) with MiniLM's tokenizer as a Hugging Face directory; returns it. Given
    `thresholds` ({label: threshold}), a multi-label classifier."""
    tokenizer = Tokenizer.from_dir(resolve_base_model("minilm-l6"))
    problem_type = SINGLE_LABEL if thresholds is None else MULTI_LABEL
    return save_model(out_dir, model, tokenizer, model.cfg, labels, max_len=max_len, problem_type=problem_type,
                      thresholds=thresholds)


@dataclass
class ServingApp:
    client: httpx.AsyncClient
    app: object
    settings: Settings
    model_a: str  # deployed at start
    model_b: str

    def register_copy(self, source: Path) -> str:
        """Registers a further copy of a classifier directory (e.g. one to delete); returns its id."""
        return register_copy(self.app.state.session_factory, self.settings.artifact_dir, source)


@asynccontextmanager
async def serving_app(
    root: Path, classifier_dirs: tuple[Path, Path], deploy: bool = True, **settings
) -> AsyncIterator[ServingApp]:
    """The app built by create_app on a migrated SQLite store (the embedded default) under `root`, copies of the
    two classifier directories registered (the first deployed), run with its lifespan and reached through
    httpx's ASGI transport."""
    settings = sqlite_settings_for(root, **settings)
    session_factory = make_session_factory(settings.database_url)
    model_ids = [register_copy(session_factory, settings.artifact_dir, source, deploy=deploy and index == 0)
                 for index, source in enumerate(classifier_dirs)]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving.test", timeout=120) as client:
            yield ServingApp(client, app, settings, *model_ids)
