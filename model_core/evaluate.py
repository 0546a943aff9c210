"""Classification metrics and evaluation of a classifier on labeled examples."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from model_core.data import DataError, Example
from model_core.model import Classifier
from model_core.tokenization import Tokenizer


def label_ids(examples: Sequence[Example], labels: list[str], what: str,
              known: str = "the training set") -> torch.Tensor:
    """Class ids of the examples' labels; DataError naming the labels that `known` lacks."""
    label_to_id = {label: i for i, label in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - label_to_id.keys())
    if unknown:
        raise DataError(f"{what} has label(s) that {known} lacks: {', '.join(map(repr, unknown))}")
    return torch.tensor([label_to_id[e.label] for e in examples], dtype=torch.long)


def classification_metrics(targets: torch.Tensor, predictions: torch.Tensor, labels: list[str]) -> dict:
    """accuracy, macro-F1 (over the classes that occur in targets or predictions), per-class
    precision/recall/F1/support and the confusion matrix (rows: true class, columns: predicted)."""
    n_classes = len(labels)
    confusion = torch.bincount(targets * n_classes + predictions, minlength=n_classes**2).view(n_classes, n_classes)
    true_positives = confusion.diag().double()
    support = confusion.sum(dim=1).double()  # true count per class
    predicted = confusion.sum(dim=0).double()
    precision = torch.where(predicted > 0, true_positives / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, true_positives / support.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    present = (support + predicted) > 0
    return {
        "accuracy": true_positives.sum().item() / max(1, len(targets)),
        "macro_f1": f1[present].mean().item() if present.any() else 0.0,
        "per_class": {
            label: {"precision": precision[i].item(), "recall": recall[i].item(), "f1": f1[i].item(),
                    "support": int(support[i].item())}
            for i, label in enumerate(labels)
        },
        "confusion": confusion.tolist(),
    }


@torch.inference_mode()
def evaluate(model: Classifier, tokenizer: Tokenizer, examples: Sequence[Example], labels: list[str],
             max_len: int, batch_size: int = 64) -> dict:
    """{"loss", "accuracy", "macro_f1", "n", "per_class", "confusion"} of the model on the examples;
    batches are formed from length-sorted examples to pad little."""
    targets = label_ids(examples, labels, "the evaluation set")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples] if any(e.text_pair is not None for e in examples) else None
    lengths = tokenizer.lengths(texts, pairs, max_len)
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    predictions = torch.empty(len(examples), dtype=torch.long)
    loss_sum = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch_pairs = None if pairs is None else [pairs[i] for i in index]
        batch = tokenizer.encode([texts[i] for i in index], batch_pairs, max_len)
        logits = model(batch.input_ids.to(device), batch.segment_ids.to(device), batch.input_mask.to(device)).float()
        loss_sum += F.cross_entropy(logits, targets[index].to(device), reduction="sum").item()
        predictions[index] = logits.argmax(dim=-1).cpu()
    model.train(was_training)
    return {"loss": loss_sum / max(1, len(examples)), "n": len(examples),
            **classification_metrics(targets, predictions, labels)}
