"""What the "auto" hyperparameters become for one run: rules over the training data, in one place.

`resolve` turns a TrainConfig whose fields may be "auto" into a concrete one, and says for each field that was
"auto" what it chose and why. It reads only the training examples, the tokenizer and the base model's size,
so the same run resolves identically when it resumes. The rules (README "How auto chooses" lists them too):

- pooling: the base model's own (model_core.base_models.resolve_pooling).
- max_len: the 99th percentile of the tokenized training lengths, rounded up to a multiple of 8, at most the
  base model's positions (and 512): longer texts are rare enough to truncate, shorter padding is free.
- batch_size: SMALL_BATCH below LARGE_DATA_ROWS training rows (more, noisier steps help small sets), else
  LARGE_BATCH (fewer, larger steps: more examples per CPU second).
- learning_rate: SMALL_DATA_LEARNING_RATE below LARGE_DATA_ROWS (many epochs over few rows: a gentler rate), else
  LARGE_DATA_LEARNING_RATE (a few epochs of large batches must get far).
- epochs: enough for MIN_STEPS optimizer steps, within MIN_EPOCHS..MAX_EPOCHS: small sets need many passes,
  large ones few; early stopping ends a run that stops improving.

docs/decisions.md has the measurements behind the numbers.
- eval_steps: every epoch when the run has EVALS_PER_RUN epochs or more, else often enough for about
  EVALS_PER_RUN evaluations, so that early stopping and the choice of the best model can act.
- early_stopping_patience: PATIENCE evaluations when epochs is "auto" and there is a held-out set; else none
  (a given number of epochs runs in full).
- class_weighting: balanced when the largest class has over IMBALANCE_RATIO times the rows of the smallest.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from model_core.config import AUTO, MULTI_LABEL, ConfigError, Pooling, TrainConfig
from model_core.data import AnyExample, problem_type_of
from model_core.tokenization import Tokenizer

LENGTH_QUANTILE = 0.99
LENGTH_MULTIPLE = 8
LONGEST_MAX_LEN = 512
LARGE_DATA_ROWS = 2000
SMALL_BATCH, LARGE_BATCH = 16, 64
SMALL_DATA_LEARNING_RATE, LARGE_DATA_LEARNING_RATE = 5e-5, 2e-4
MIN_STEPS = 500
MIN_EPOCHS, MAX_EPOCHS = 3, 20
EVALS_PER_RUN = 10
PATIENCE = 4
IMBALANCE_RATIO = 3.0

Choices = dict[str, dict]  # field -> {"value": what "auto" became, "reason": one line}


def resolve(cfg: TrainConfig, train: Sequence[AnyExample], tokenizer: Tokenizer, model_max_positions: int,
            n_labels: int, has_eval: bool, pooling: tuple[Pooling, str]) -> tuple[TrainConfig, Choices]:
    """`cfg` with every "auto" field replaced by its rule's value (module doc), and the choices made. `pooling`:
    the base model's resolve_pooling answer (value, reason), the choice for "auto" pooling."""
    choices: Choices = {}
    values = cfg.model_dump()

    def choose(name: str, value, reason: str) -> None:
        if values[name] == AUTO:
            values[name] = value
            choices[name] = {"value": value, "reason": reason}

    choose("pooling", *pooling)
    rows = len(train)
    if values["max_len"] == AUTO:
        choose("max_len", *_max_len(train, tokenizer, min(model_max_positions, LONGEST_MAX_LEN)))
    if rows < LARGE_DATA_ROWS:
        choose("batch_size", SMALL_BATCH, f"{rows} training rows (< {LARGE_DATA_ROWS}): small batches, more steps")
        choose("learning_rate", SMALL_DATA_LEARNING_RATE,
               f"{rows} training rows (< {LARGE_DATA_ROWS}): many epochs over few rows, a gentler rate")
    else:
        choose("batch_size", LARGE_BATCH, f"{rows} training rows (>= {LARGE_DATA_ROWS})")
        choose("learning_rate", LARGE_DATA_LEARNING_RATE,
               f"{rows} training rows (>= {LARGE_DATA_ROWS}): a few epochs must get far")

    steps_per_epoch = math.ceil(rows / values["batch_size"])
    epochs = min(max(math.ceil(MIN_STEPS / steps_per_epoch), MIN_EPOCHS), MAX_EPOCHS)
    choose("epochs", epochs, f"{steps_per_epoch} steps per epoch: at least {MIN_STEPS} steps within "
           f"{MIN_EPOCHS}..{MAX_EPOCHS} epochs")
    total_steps = values["total_steps"] or values["epochs"] * steps_per_epoch
    epochs_run = total_steps / steps_per_epoch
    if not has_eval:
        choose("eval_steps", None, "no held-out set to evaluate on")
    elif epochs_run >= EVALS_PER_RUN:
        choose("eval_steps", None, f"every epoch: {math.floor(epochs_run)} evaluations")
    else:
        every = math.ceil(total_steps / EVALS_PER_RUN)
        choose("eval_steps", every, f"about {EVALS_PER_RUN} evaluations in {total_steps} steps")
    if not has_eval:
        choose("early_stopping_patience", None, "no held-out set to stop on")
    elif cfg.epochs != AUTO:
        choose("early_stopping_patience", None, f"epochs {cfg.epochs} was given: the run goes through them")
    else:
        choose("early_stopping_patience", PATIENCE, f"stop after {PATIENCE} evaluations without a better macro-F1")

    counts = Counter(label for example in train for label in example.labels).values()
    ratio = f"the largest class has {max(counts)} training rows, the smallest {min(counts)}"
    if problem_type_of(train) == MULTI_LABEL:
        choose("class_weighting", "none", "multi-label: each label's threshold is tuned on the held-out split")
    elif max(counts) > IMBALANCE_RATIO * min(counts):
        choose("class_weighting", "balanced", f"{ratio} (over {IMBALANCE_RATIO:g}x)")
    else:
        choose("class_weighting", "none", f"{ratio} (at most {IMBALANCE_RATIO:g}x)")
    return TrainConfig.model_validate(values), choices


def _max_len(train: Sequence[AnyExample], tokenizer: Tokenizer, longest: int) -> tuple[int, str]:
    """(max_len, reason): the LENGTH_QUANTILE of the tokenized lengths rounded up to LENGTH_MULTIPLE, <= longest."""
    texts = [example.text for example in train]
    pairs = [example.text_pair for example in train] if any(e.text_pair is not None for e in train) else None
    lengths = sorted(tokenizer.lengths(texts, pairs, longest))
    quantile = lengths[math.ceil(LENGTH_QUANTILE * len(lengths)) - 1]
    max_len = min(max(LENGTH_MULTIPLE, math.ceil(quantile / LENGTH_MULTIPLE) * LENGTH_MULTIPLE), longest)
    return max_len, (f"{LENGTH_QUANTILE:.0%} of the training texts have <= {quantile} tokens (the longest "
                     f"{lengths[-1]}); at most {longest}")


def class_weights(cfg: TrainConfig, targets: torch.Tensor, n_labels: int) -> torch.Tensor | None:
    """(n_labels,) cross-entropy weights for class_weighting "balanced": inverse class frequency in `targets`,
    mean 1 over the classes that occur (one that does not never weighs a target); None for "none"."""
    if cfg.class_weighting != "balanced":
        return None
    if targets.dim() > 1:  # (N, L) label rows
        raise ConfigError("class_weighting 'balanced' weighs the classes of single-label data; a multi-label model "
                          "tunes one threshold per label instead: use auto or none")
    counts = torch.bincount(targets, minlength=n_labels).double()  # (L,)
    inverse = torch.where(counts > 0, 1.0 / counts.clamp(min=1), 0.0)  # (L,)
    return (inverse / inverse[counts > 0].mean()).float()
