"""model_core.auto: what "auto" becomes for a run, from the training rows alone, and why."""
from __future__ import annotations

import math

import pytest
import torch

from model_core import auto
from model_core.config import AUTO, ConfigError, TrainConfig
from model_core.data import Example
from model_core.tokenization import Tokenizer
from tests.factories import TINY_VOCAB, sentiment_examples, topic_examples

TOKENIZER = Tokenizer({token: i for i, token in enumerate(TINY_VOCAB)})
POOLING = ("mean", "the base model declares mean pooling")


def resolve(train, cfg: TrainConfig | None = None, max_positions: int = 512, has_eval: bool = True):
    n_labels = len({label for example in train for label in example.labels})
    return auto.resolve(cfg or TrainConfig(), train, TOKENIZER, max_positions, n_labels, has_eval, POOLING)


def test_every_auto_field_gets_a_value_and_a_reason():
    cfg, choices = resolve(sentiment_examples(100, seed=0))
    assert cfg.auto_fields() == []
    assert set(choices) == set(TrainConfig().auto_fields())
    assert all(choice["reason"] and getattr(cfg, name) == choice["value"] for name, choice in choices.items())
    assert cfg.pooling == "mean"


def test_given_values_are_kept_and_not_reported_as_choices():
    given = TrainConfig(epochs=3, batch_size=8, learning_rate=3e-5, max_len=40, class_weighting="none")
    cfg, choices = resolve(sentiment_examples(100, seed=0), given)
    assert (cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.max_len) == (3, 8, 3e-5, 40)
    assert not {"epochs", "batch_size", "learning_rate", "max_len", "class_weighting"} & choices.keys()
    assert cfg.early_stopping_patience is None  # given epochs run in full


def test_resolving_is_deterministic():
    train = sentiment_examples(300, seed=1)
    assert resolve(train) == resolve(train)


def test_max_len_covers_the_quantile_of_token_lengths_in_multiples_of_eight():
    # 99 texts of 3 words and 1 of 40: the 99th percentile is the short ones ([CLS] + 3 + [SEP] = 5 tokens)
    train = [Example("good movie plot", None, "pos" if i % 2 else "neg") for i in range(99)]
    train.append(Example(" ".join(["film"] * 40), None, "pos"))
    cfg, choices = resolve(train)
    assert cfg.max_len == 8
    assert "<= 5 tokens" in choices["max_len"]["reason"] and "longest 42" in choices["max_len"]["reason"]
    # half of them long: the quantile is the long text, rounded up to 48
    cfg, _ = resolve(train[:50] + [train[-1]] * 50)
    assert cfg.max_len == 48


def test_max_len_never_passes_the_model_positions():
    train = [Example(" ".join(["film"] * 60), None, label) for label in ("pos", "neg")] * 10
    cfg, _ = resolve(train, max_positions=32)
    assert cfg.max_len == 32


@pytest.mark.parametrize("rows", [60, 600, 6000])
def test_epochs_give_small_sets_enough_steps_within_bounds(rows):
    cfg, _ = resolve(sentiment_examples(rows, seed=2))
    steps_per_epoch = math.ceil(rows / cfg.batch_size)
    assert auto.MIN_EPOCHS <= cfg.epochs <= auto.MAX_EPOCHS
    if cfg.epochs < auto.MAX_EPOCHS:  # the cap aside, the run has at least MIN_STEPS steps, and not an epoch more
        assert cfg.epochs * steps_per_epoch >= auto.MIN_STEPS or cfg.epochs == auto.MIN_EPOCHS
        assert (cfg.epochs - 1) * steps_per_epoch < auto.MIN_STEPS or cfg.epochs == auto.MIN_EPOCHS
    small = rows < auto.LARGE_DATA_ROWS
    assert cfg.batch_size == (auto.SMALL_BATCH if small else auto.LARGE_BATCH)
    assert cfg.learning_rate == (auto.SMALL_DATA_LEARNING_RATE if small else auto.LARGE_DATA_LEARNING_RATE)
    assert cfg.early_stopping_patience == auto.PATIENCE


def test_evaluations_are_spread_over_the_run():
    cfg, _ = resolve(sentiment_examples(6000, seed=3))  # few epochs: evaluate within them
    total = cfg.epochs * math.ceil(6000 / cfg.batch_size)
    assert cfg.eval_steps == math.ceil(total / auto.EVALS_PER_RUN)
    cfg, _ = resolve(sentiment_examples(60, seed=3))  # many epochs: every epoch is often enough
    assert cfg.eval_steps is None


def test_without_a_held_out_set_nothing_evaluates_or_stops_early():
    cfg, choices = resolve(sentiment_examples(100, seed=0), has_eval=False)
    assert cfg.eval_steps is None and cfg.early_stopping_patience is None
    assert "no held-out set" in choices["early_stopping_patience"]["reason"]


def test_class_weighting_balances_only_an_imbalanced_set():
    balanced = sentiment_examples(100, seed=0)
    assert resolve(balanced)[0].class_weighting == "none"
    ratio = int(auto.IMBALANCE_RATIO)
    skewed = [Example(f"good film {i}", None, "pos") for i in range(10 * ratio + 1)]
    skewed += [Example(f"bad film {i}", None, "neg") for i in range(10)]
    cfg, choices = resolve(skewed)
    assert cfg.class_weighting == "balanced"
    assert f"largest class has {10 * ratio + 1}" in choices["class_weighting"]["reason"]


def test_multi_label_data_is_never_weighted_and_refuses_balanced():
    train = topic_examples(100, seed=0)
    assert resolve(train)[0].class_weighting == "none"
    cfg, _ = resolve(train, TrainConfig(class_weighting="balanced"))
    with pytest.raises(ConfigError, match="multi-label"):
        auto.class_weights(cfg, torch.zeros(len(train), 3), 3)


def test_balanced_weights_are_inverse_frequencies_with_mean_one_over_present_classes():
    cfg = TrainConfig(class_weighting="balanced")
    targets = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)  # class 3 absent
    weights = auto.class_weights(cfg, targets, 4)
    assert weights[3] == 0
    assert torch.allclose(weights[:3] * torch.tensor([6.0, 3.0, 1.0]), weights[0] * 6)  # proportional to 1 / count
    assert weights[:3].mean().item() == pytest.approx(1.0)
    assert auto.class_weights(TrainConfig(class_weighting="none"), targets, 4) is None


def test_auto_is_the_default_of_every_data_driven_field():
    assert set(TrainConfig().auto_fields()) >= {"epochs", "batch_size", "learning_rate", "max_len",
                                                 "class_weighting", "pooling"}
    assert TrainConfig().epochs == AUTO
