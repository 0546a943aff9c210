"""model_core.auto: what "auto" becomes for small and large synthetic data sets, given values kept, class weights."""
import math

import pytest
import torch
import torch.nn.functional as F

from model_core.auto import class_weights, resolve
from model_core.config import TrainConfig
from model_core.data import Example
from model_core.train import build_trainer
from tests.factories import make_tiny_base, sentiment_examples

MEAN = ("mean", "the base model declares mean pooling")


def rows(n: int, labels: list[str], words: int = 10, long_every: int = 0) -> list[Example]:
    """n examples, labels in turn, each `words` words ("good" is one MiniLM token); every `long_every`-th row
    has 100 words."""
    return [Example(" ".join(["good"] * (100 if long_every and i % long_every == 0 else words)), None,
                    labels[i % len(labels)]) for i in range(n)]


def values(choices: dict) -> dict:
    return {name: choice["value"] for name, choice in choices.items()}


def test_small_data_gets_small_batches_many_epochs_and_early_stopping(minilm_tokenizer):
    train = rows(270, ["neg", "pos"], long_every=100)  # 3 outliers of 102 tokens; the rest 12
    cfg, choices = resolve(TrainConfig(), train, minilm_tokenizer, 512, 2, has_eval=True, pooling=MEAN)
    assert values(choices) == {"pooling": "mean", "max_len": 16, "batch_size": 16, "learning_rate": 5e-5,
                               "epochs": 20, "eval_steps": None, "early_stopping_patience": 4,
                               "class_weighting": "none"}
    assert cfg.model_dump() == TrainConfig(**values(choices)).model_dump()  # concrete: no "auto" left
    assert "<= 12 tokens" in choices["max_len"]["reason"] and "102" in choices["max_len"]["reason"]
    assert all(choice["reason"] for choice in choices.values())


def test_large_data_gets_large_batches_few_epochs_and_evaluations_within_them(minilm_tokenizer):
    labels = [f"intent{i}" for i in range(77)]
    train = rows(9000, labels, words=20)
    cfg, choices = resolve(TrainConfig(), train, minilm_tokenizer, 512, 77, has_eval=True, pooling=MEAN)
    steps_per_epoch = math.ceil(9000 / 32)
    assert values(choices) == {"pooling": "mean", "max_len": 24, "batch_size": 32, "learning_rate": 1e-4,
                               "epochs": 3, "eval_steps": math.ceil(3 * steps_per_epoch / 10),
                               "early_stopping_patience": 4, "class_weighting": "none"}


def test_max_len_is_capped_by_the_model_positions(minilm_tokenizer):
    _, choices = resolve(TrainConfig(), rows(50, ["a", "b"], words=100), minilm_tokenizer, 64, 2, has_eval=True,
                         pooling=MEAN)
    assert choices["max_len"]["value"] == 64 and "at most 64" in choices["max_len"]["reason"]


def test_given_values_are_kept_and_not_listed_as_choices(minilm_tokenizer):
    given = {"epochs": 2, "batch_size": 4, "learning_rate": 1e-3, "max_len": 200, "eval_steps": 7,
             "early_stopping_patience": None, "pooling": "cls", "class_weighting": "balanced"}
    cfg, choices = resolve(TrainConfig(**given), rows(100, ["a", "b"]), minilm_tokenizer, 512, 2, has_eval=True,
                           pooling=("cls", "set explicitly"))
    assert choices == {} and {name: getattr(cfg, name) for name in given} == given


def test_given_epochs_run_in_full_and_no_held_out_set_means_no_early_stopping(minilm_tokenizer):
    train = rows(100, ["a", "b"])
    _, choices = resolve(TrainConfig(epochs=3), train, minilm_tokenizer, 512, 2, has_eval=True, pooling=MEAN)
    assert choices["early_stopping_patience"]["value"] is None
    _, choices = resolve(TrainConfig(), train, minilm_tokenizer, 512, 2, has_eval=False, pooling=MEAN)
    assert (choices["early_stopping_patience"]["value"], choices["eval_steps"]["value"]) == (None, None)


def test_given_total_steps_set_the_evaluation_interval(minilm_tokenizer):
    _, choices = resolve(TrainConfig(total_steps=1000), rows(4000, ["a", "b"]), minilm_tokenizer, 512, 2,
                         has_eval=True, pooling=MEAN)
    assert choices["eval_steps"]["value"] == 100


@pytest.mark.parametrize("counts, weighting", [((30, 10), "none"), ((31, 10), "balanced"), ((50, 50, 5), "balanced")])
def test_auto_weighs_classes_when_the_largest_has_over_3x_the_rows_of_the_smallest(minilm_tokenizer, counts,
                                                                                  weighting):
    train = [Example("good", None, f"c{i}") for i, count in enumerate(counts) for _ in range(count)]
    _, choices = resolve(TrainConfig(), train, minilm_tokenizer, 512, len(counts), has_eval=True, pooling=MEAN)
    assert choices["class_weighting"]["value"] == weighting
    assert f"{max(counts)} training rows, the smallest {min(counts)}" in choices["class_weighting"]["reason"]


def test_balanced_weights_are_inverse_frequencies_with_mean_1():
    targets = torch.tensor([0] * 90 + [1] * 10 + [3] * 20)  # class 2 has no rows
    weights = class_weights(TrainConfig(class_weighting="balanced"), targets, 4)
    inverse = torch.tensor([1 / 90, 1 / 10, 0.0, 1 / 20])
    assert torch.allclose(weights, inverse / inverse[[0, 1, 3]].mean())
    assert weights[[0, 1, 3]].mean().item() == pytest.approx(1.0)
    assert class_weights(TrainConfig(class_weighting="none"), targets, 4) is None


def test_an_imbalanced_run_trains_with_balanced_weights(tmp_path):
    base = make_tiny_base(tmp_path / "base")
    train = [e for e in sentiment_examples(80, seed=0) if e.label == "pos"] + sentiment_examples(20, seed=1)[1::2]
    trainer = build_trainer(train, None, base, tmp_path / "run", TrainConfig(), device="cpu")
    assert trainer.choices["class_weighting"]["value"] == "balanced"
    neg, pos = 10, 40  # rows of each class, labels sorted: neg, pos
    assert trainer.class_weights.tolist() == pytest.approx([2 * pos / (neg + pos), 2 * neg / (neg + pos)])
    index = [0, 1, 2, 40, 41]  # three pos rows, two neg
    trainer.model.eval()  # no dropout: the step's forward pass is the one computed here
    batch = trainer.tokenizer.encode([trainer.texts[i] for i in index], None, trainer.max_len)
    with torch.no_grad():
        logits = trainer.model(batch.input_ids, batch.segment_ids, batch.input_mask)  # (5, 2)
    weighted = F.cross_entropy(logits, trainer.targets[index], weight=trainer.class_weights).item()
    unweighted = F.cross_entropy(logits, trainer.targets[index]).item()
    loss, _ = trainer.step(index)
    assert loss == pytest.approx(weighted, abs=1e-6) and loss != pytest.approx(unweighted, abs=1e-4)
