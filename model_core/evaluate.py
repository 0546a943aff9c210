"""Classification metrics and evaluation of a classifier on labeled examples.

Single-label: the prediction is the likeliest class (softmax). Multi-label: a label is predicted where its sigmoid
probability reaches that label's threshold; thresholds are tuned on held-out examples, each for its label's F1.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from model_core.config import DEFAULT_THRESHOLD, MULTI_LABEL, SINGLE_LABEL
from model_core.data import AnyExample, DataError, Example, MultiLabelExample, problem_type_of
from model_core.model import Classifier
from model_core.tokenization import Tokenizer

# the loss of each problem type, mean over the batch (multi-label: over the batch and the labels)
LOSSES = {SINGLE_LABEL: F.cross_entropy, MULTI_LABEL: F.binary_cross_entropy_with_logits}


def _check_known(examples: Sequence[AnyExample], labels: list[str], what: str, known: str) -> dict[str, int]:
    """label -> class id; DataError naming the examples' labels that `known` lacks."""
    label_to_id = {label: i for i, label in enumerate(labels)}
    unknown = sorted({label for e in examples for label in e.labels} - label_to_id.keys())
    if unknown:
        raise DataError(f"{what} has label(s) that {known} lacks: {', '.join(map(repr, unknown))}")
    return label_to_id


def label_ids(examples: Sequence[Example], labels: list[str], what: str,
              known: str = "the training set") -> torch.Tensor:
    """Class ids of the examples' labels; DataError naming the labels that `known` lacks."""
    label_to_id = _check_known(examples, labels, what, known)
    return torch.tensor([label_to_id[e.label] for e in examples], dtype=torch.long)


def label_matrix(examples: Sequence[MultiLabelExample], labels: list[str], what: str,
                 known: str = "the training set") -> torch.Tensor:
    """(N, L) float 0/1: row i is 1 at the class ids of example i's labels; DataError as label_ids."""
    label_to_id = _check_known(examples, labels, what, known)
    matrix = torch.zeros(len(examples), len(labels))
    for row, example in enumerate(examples):
        matrix[row, [label_to_id[label] for label in example.labels]] = 1.0
    return matrix


def label_targets(examples: Sequence[AnyExample], labels: list[str], what: str,
                  known: str = "the training set") -> torch.Tensor:
    """What LOSSES compare the logits with: class ids (N,) of single-label examples, label_matrix of multi-label."""
    targets_of = label_matrix if problem_type_of(examples) == MULTI_LABEL else label_ids
    return targets_of(examples, labels, what, known)


def _per_label(true_positives: torch.Tensor, predicted: torch.Tensor, support: torch.Tensor,
               labels: list[str]) -> dict:
    """{"macro_f1", "weighted_f1", "per_class"} from per-label counts (L,) of true positives, predictions and true
    rows; macro-F1 averages the labels that are true or predicted at least once, weighted-F1 weighs each label's F1
    by its support."""
    precision = torch.where(predicted > 0, true_positives / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, true_positives / support.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    present = (support + predicted) > 0
    return {
        "macro_f1": f1[present].mean().item() if present.any() else 0.0,
        "weighted_f1": ((f1 * support).sum() / support.sum()).item() if support.sum() > 0 else 0.0,
        "per_class": {
            label: {"precision": precision[i].item(), "recall": recall[i].item(), "f1": f1[i].item(),
                    "support": int(support[i].item())}
            for i, label in enumerate(labels)
        },
    }


def classification_metrics(targets: torch.Tensor, predictions: torch.Tensor, labels: list[str]) -> dict:
    """accuracy, macro-F1 (over the classes that occur in targets or predictions), weighted-F1, per-class
    precision/recall/F1/support and the confusion matrix (rows: true class, columns: predicted)."""
    n_classes = len(labels)
    confusion = torch.bincount(targets * n_classes + predictions, minlength=n_classes**2).view(n_classes, n_classes)
    true_positives = confusion.diag().double()
    support = confusion.sum(dim=1).double()  # true count per class
    predicted = confusion.sum(dim=0).double()
    return {"accuracy": true_positives.sum().item() / max(1, len(targets)),
            **_per_label(true_positives, predicted, support, labels), "confusion": confusion.tolist()}


def multi_label_metrics(targets: torch.Tensor, predictions: torch.Tensor, labels: list[str]) -> dict:
    """Of (N, L) 0/1 targets and predictions: accuracy = subset accuracy (rows whose predicted label set is exactly
    the true one), micro-F1 (over every row-label decision), macro- and weighted-F1 and per-label
    precision/recall/F1/support as classification_metrics."""
    truth, predicted = targets.bool(), predictions.bool()
    true_positives = (truth & predicted).sum(dim=0).double()  # (L,)
    n_predicted, support = predicted.sum(dim=0).double(), truth.sum(dim=0).double()
    decided = n_predicted.sum() + support.sum()  # 2 TP + FP + FN
    return {"accuracy": (truth == predicted).all(dim=1).sum().item() / max(1, len(targets)),
            "micro_f1": (2 * true_positives.sum() / decided).item() if decided > 0 else 0.0,
            **_per_label(true_positives, n_predicted, support, labels)}


def tune_thresholds(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(L,) thresholds for (N, L) probabilities and 0/1 targets, each the one that maximises its label's F1
    (the fewest positives among equal F1s): halfway between the lowest probability it predicts positive (>=) and
    the next lower one (0 below the lowest). DEFAULT_THRESHOLD for a label without positives."""
    n_rows, n_labels = probabilities.shape
    thresholds = torch.full((n_labels,), DEFAULT_THRESHOLD)
    predicted_positive = torch.arange(1, n_rows + 1)  # when the top 1, 2, ..., N rows are predicted positive
    for j in range(n_labels):
        positives = targets[:, j].sum()
        if positives == 0:
            continue
        scores, order = probabilities[:, j].sort(descending=True)  # (N,)
        true_positives = targets[order, j].cumsum(0)  # (N,)
        f1 = 2 * true_positives / (predicted_positive + positives)
        below = torch.cat([scores[1:], scores.new_zeros(1)])  # (N,) the next lower probability
        f1[scores == below] = -1.0  # no threshold separates equal probabilities
        best = f1.argmax()  # the first of equal maxima: the fewest positives
        thresholds[j] = (scores[best] + below[best]) / 2
    return thresholds


@torch.inference_mode()
def predict_logits(model: Classifier, tokenizer: Tokenizer, examples: Sequence[AnyExample], max_len: int,
            batch_size: int) -> torch.Tensor:
    """(N, L) float logits on CPU in example order; batches are formed from length-sorted examples to pad little."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples] if any(e.text_pair is not None for e in examples) else None
    lengths = tokenizer.lengths(texts, pairs, max_len)
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    logits = torch.empty(len(examples), model.n_labels)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch_pairs = None if pairs is None else [pairs[i] for i in index]
        batch = tokenizer.encode([texts[i] for i in index], batch_pairs, max_len)
        logits[index] = model(batch.input_ids.to(device), batch.segment_ids.to(device),
                              batch.input_mask.to(device)).float().cpu()
    model.train(was_training)
    return logits


def evaluate(model: Classifier, tokenizer: Tokenizer, examples: Sequence[AnyExample], labels: list[str],
             max_len: int, batch_size: int = 64, thresholds: Sequence[float] | Literal["tune"] | None = None) -> dict:
    """logit_metrics of the model's logits on the examples."""
    logits = predict_logits(model, tokenizer, examples, max_len, batch_size)
    return logit_metrics(logits, examples, labels, thresholds)


def logit_metrics(logits: torch.Tensor, examples: Sequence[AnyExample], labels: list[str],
                  thresholds: Sequence[float] | Literal["tune"] | None = None) -> dict:
    """{"loss", "n", "accuracy", "macro_f1", "weighted_f1", "per_class", ...} of (N, L) logits of the examples
    (loss: LOSSES'). Single-label: accuracy of the likeliest class, and "confusion". Multi-label
    (multi_label_metrics): plus "micro_f1" and "thresholds" ({label: threshold}) the predictions used: the given
    ones (in label order), DEFAULT_THRESHOLD for every label when None, or with "tune" each tuned on these examples
    for its label's F1 (tune_thresholds)."""
    targets = label_targets(examples, labels, "the evaluation set")
    problem_type = problem_type_of(examples)
    loss = LOSSES[problem_type](logits, targets).item() if examples else 0.0
    if problem_type == SINGLE_LABEL:
        metrics = classification_metrics(targets, logits.argmax(dim=-1), labels)
    else:
        probabilities = logits.sigmoid()
        if thresholds == "tune":
            chosen = tune_thresholds(probabilities, targets)
        else:
            chosen = torch.tensor(thresholds or [DEFAULT_THRESHOLD] * len(labels))
        metrics = {**multi_label_metrics(targets, probabilities >= chosen, labels),
                   "thresholds": dict(zip(labels, chosen.tolist(), strict=True))}
    return {"loss": loss, "n": len(examples), **metrics}
