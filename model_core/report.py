"""The evaluation report of a classifier on labeled examples, and the temperature that calibrates its scores.

`build_report` turns a model's (N, L) logits on N labeled examples into one JSON-ready dict:

    problem_type, n_rows, labels
    metrics             accuracy, macro_f1, weighted_f1, loss (+ multi-label: micro_f1, subset_accuracy)
    per_class           [{label, precision, recall, f1, support}]
    confusion_matrix    rows = true class, columns = predicted (single-label; None for multi-label)
    calibration         {temperature, ece_before, ece_after, cross_fitted, reliability: ECE_BINS rows, after
                        calibration}
    coverage            [{min_confidence, coverage, accuracy}] at COVERAGE_LEVELS (single-label; None otherwise)
    confident_mistakes  up to CONFIDENT_MISTAKES [{text, text_pair, true, predicted, score}], most confident first
    baselines           {majority: {...}, tfidf_logreg: {...}} on the same examples (None when none can be fitted)
    thresholds          multi-label: {label: threshold} the predictions used; None for single-label
    cross_fitted_metrics  multi-label, thresholds tuned on these rows: {subset_accuracy, micro_f1, macro_f1} with
                        each fold decided at thresholds tuned on the other folds; None otherwise
    warnings            [{kind, message, ...}]: "below_majority_baseline"

The metrics are model_core.evaluate's (logit_metrics), on the raw logits: the temperature changes no prediction.

Calibration. Single-label scores are softmax(logits / T), one temperature T > 0 fitted after training by LBFGS
on the held-out logits (fit_temperature) and saved in the model directory (checkpoint.save_temperature).
ECE (expected calibration error) bins the rows by their top probability into ECE_BINS equal-width bins and
averages |accuracy - mean confidence| over the bins, weighted by their rows. Multi-label models are not
temperature-scaled (T stays 1): their decisions are per-label thresholds tuned on the same probabilities, and a
rescaling would only move the thresholds with them; their ECE bins every (row, label) probability against whether
the label is true.

Cross-fitting. The held-out report at the end of training is on the rows its temperature or thresholds were fitted
on, which flatters what was fitted. There a single-label report's ece_after and reliability table are cross-fitted
("cross_fitted": true), and a multi-label report adds cross_fitted_metrics: the rows are split into
CALIBRATION_FOLDS seeded folds, and each fold is scaled by a temperature (decided at thresholds) fitted on the other
folds, so that no row's score or decision was fitted on its own labels.

Baselines are fitted on the model's training examples when given (the held-out report at the end of training),
else by BASELINE_FOLDS-fold cross-validation on the evaluated examples themselves (an evaluation on a new dataset);
each says which in "fitted_on".
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from model_core.checkpoint import load_model
from model_core.config import MULTI_LABEL, SINGLE_LABEL
from model_core.data import AnyExample, check_problem_type, problem_type_of
from model_core.evaluate import (
    classification_metrics,
    label_targets,
    logit_metrics,
    multi_label_metrics,
    predict_logits,
    tune_thresholds,
)
from model_core.predict import thresholds_over

REPORT_FILE = "evaluation.json"  # the held-out report, saved in the model directory
ECE_BINS = 10
COVERAGE_LEVELS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # min_confidence values the coverage table tries
CONFIDENT_MISTAKES = 20
# a model whose accuracy is not at least this far above always answering the training data's most common label
# (set) has learned little that the data's label counts do not already say: its report warns
MAJORITY_MARGIN = 0.05
BASELINE_FOLDS = 5  # cross-validation folds of the baselines when no training examples are given
# bounds of the fitted temperature: a (small) held-out set the model separates perfectly drives the fitted T
# towards 0, which would make every later score 1; sharpening is kept to 4x at most
TEMPERATURE_RANGE = (0.25, 20.0)
CALIBRATION_FOLDS = 5  # folds of the cross-fitted figures (module doc)
BaselineSource = Literal["train", "cross_validation"]


# --- calibration ----------------------------------------------------------------------------------------------------

def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T minimising the cross-entropy of softmax(logits / T) (logits (N, L)) against class ids (N,): LBFGS on
    log T from T = 1 (so T stays positive), clamped to TEMPERATURE_RANGE; 1 without rows."""
    if len(targets) == 0:
        return 1.0
    logits = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(*TEMPERATURE_RANGE))


def calibration_folds(n_rows: int) -> torch.Tensor:
    """(n_rows,) fold ids in 0..CALIBRATION_FOLDS-1 (fewer with fewer rows), a seeded shuffle of equal-sized folds."""
    folds = max(1, min(CALIBRATION_FOLDS, n_rows))
    return torch.randperm(n_rows, generator=torch.Generator().manual_seed(0)) % folds


def _out_of_fold(logits: torch.Tensor, targets: torch.Tensor, fit: Callable, apply: Callable) -> torch.Tensor:
    """(N, ...) `apply(fitted, logits of a calibration fold's rows)` for every fold, each `fitted` = `fit(the other
    folds' logits, their targets)`: what rows whose labels the fitted value never saw get."""
    folds = calibration_folds(len(logits))
    rows, parts = [], []
    for fold in folds.unique():
        inside = folds == fold
        rows.append(inside.nonzero().flatten())
        parts.append(apply(fit(logits[~inside], targets[~inside]), logits[inside]))
    return torch.cat(parts)[torch.cat(rows).argsort()]  # back in row order


def cross_fitted_probabilities(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, L) softmax(logits / T_k) for the rows of each calibration fold k, T_k fitted on the other folds' rows.
    One fold (a single row): its T is 1."""
    return _out_of_fold(logits, targets, fit_temperature,
                        lambda temperature, rows: (rows.double() / temperature).softmax(dim=-1))


def cross_fitted_decisions(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, L) multi-label decisions of each calibration fold's rows at thresholds tuned (tune_thresholds) on the
    other folds' rows."""
    return _out_of_fold(logits, targets, lambda rows, labels: tune_thresholds(rows.sigmoid(), labels),
                        lambda thresholds, rows: rows.sigmoid() >= thresholds)


def reliability(confidence: torch.Tensor, correct: torch.Tensor) -> tuple[float, list[dict]]:
    """(ECE, table) of confidences (N,) in [0, 1] against 0/1 outcomes (N,): ECE_BINS equal-width bins [i/B, (i+1)/B)
    (the last one closed), each with its rows' count, mean confidence and accuracy (None when empty)."""
    bins = (confidence.double() * ECE_BINS).long().clamp(0, ECE_BINS - 1)  # (N,)
    count = torch.bincount(bins, minlength=ECE_BINS)
    confidence_sum = torch.bincount(bins, weights=confidence.double(), minlength=ECE_BINS)
    correct_sum = torch.bincount(bins, weights=correct.double(), minlength=ECE_BINS)
    ece = ((confidence_sum - correct_sum).abs().sum() / max(1, len(confidence))).item()
    table = [{"bin_lower": i / ECE_BINS, "bin_upper": (i + 1) / ECE_BINS, "count": int(count[i]),
              "confidence": (confidence_sum[i] / count[i]).item() if count[i] else None,
              "accuracy": (correct_sum[i] / count[i]).item() if count[i] else None}
             for i in range(ECE_BINS)]
    return ece, table


def _confidence_outcomes(probabilities: torch.Tensor, targets: torch.Tensor,
                         problem_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What calibration compares: single-label, each row's top probability and whether its class is the true one;
    multi-label, every (row, label) probability and whether the label is true."""
    if problem_type == MULTI_LABEL:
        return probabilities.flatten(), targets.flatten()
    top, predicted = probabilities.max(dim=-1)
    return top, (predicted == targets).double()


def _calibration(logits: torch.Tensor, targets: torch.Tensor, problem_type: str, temperature: float,
                 cross_fitted: bool) -> dict:
    """ECE before and after the temperature; `cross_fitted`: after, as cross_fitted_probabilities (the temperature
    was fitted on these rows)."""
    before = _probabilities(logits, problem_type, 1.0)
    after = cross_fitted_probabilities(logits, targets) if cross_fitted else _probabilities(logits, problem_type,
                                                                                             temperature)
    ece_before, _ = reliability(*_confidence_outcomes(before, targets, problem_type))
    ece_after, table = reliability(*_confidence_outcomes(after, targets, problem_type))
    return {"temperature": temperature, "ece_before": ece_before, "ece_after": ece_after,
            "cross_fitted": cross_fitted, "reliability": table}


def _probabilities(logits: torch.Tensor, problem_type: str, temperature: float) -> torch.Tensor:
    """What the model serves: softmax(logits / T) for single-label, a sigmoid per label for multi-label."""
    return logits.sigmoid() if problem_type == MULTI_LABEL else (logits / temperature).softmax(dim=-1)


# --- decisions ------------------------------------------------------------------------------------------------------

def coverage(top: torch.Tensor, correct: torch.Tensor) -> list[dict]:
    """At each of COVERAGE_LEVELS as min_confidence: the share of rows whose top probability (N,) reaches it (the
    rest abstain) and the accuracy on those (None when none does)."""
    table = []
    for level in COVERAGE_LEVELS:
        kept = top >= level
        n_kept = int(kept.sum())
        table.append({"min_confidence": level, "coverage": n_kept / max(1, len(top)),
                      "accuracy": correct[kept].double().mean().item() if n_kept else None})
    return table


def confident_mistakes(examples: Sequence[AnyExample], labels: list[str], probabilities: torch.Tensor,
                       targets: torch.Tensor, thresholds: Sequence[float] | None) -> list[dict]:
    """The wrongly predicted examples, most confident first (at most CONFIDENT_MISTAKES). Single-label: "true" and
    "predicted" are labels, "score" the predicted label's probability. Multi-label: they are label lists, and
    "score" is the confidence of the row's surest wrong decision (p of a wrongly predicted label, 1 - p of a
    missed one)."""
    if thresholds is None:
        score, predicted = probabilities.max(dim=-1)  # (N,)
        wrong = predicted != targets
        true_of = predicted_of = labels.__getitem__
        truth, predicted_rows = targets.tolist(), predicted.tolist()
    else:
        predicted = probabilities >= torch.tensor(thresholds)  # (N, L)
        decisions = predicted != targets.bool()
        score = torch.where(predicted, probabilities, 1 - probabilities).masked_fill(~decisions, -1.0).amax(dim=-1)
        wrong = decisions.any(dim=-1)
        true_of = predicted_of = lambda row: [label for label, on in zip(labels, row, strict=True) if on]  # noqa: E731
        truth, predicted_rows = targets.bool().tolist(), predicted.tolist()
    index = wrong.nonzero().flatten()
    index = index[score[index].argsort(descending=True, stable=True)][:CONFIDENT_MISTAKES]
    return [{"text": examples[i].text, "text_pair": examples[i].text_pair, "true": true_of(truth[i]),
             "predicted": predicted_of(predicted_rows[i]), "score": score[i].item()} for i in index.tolist()]


# --- baselines ------------------------------------------------------------------------------------------------------

def _input_text(example: AnyExample) -> str:
    return example.text if example.text_pair is None else f"{example.text} {example.text_pair}"


def _baseline_predictions(train: Sequence[AnyExample], test: Sequence[AnyExample],
                          labels: list[str]) -> dict[str, torch.Tensor]:
    """Each baseline fitted on `train`, predicting `test`: class ids (N,) or a 0/1 matrix (N, L) as the targets.
    majority: the most common label (multi-label: label set) of `train`, for every row. tfidf_logreg: TF-IDF of
    word unigrams and bigrams under logistic regression (one per label for multi-label); the majority where
    `train` has a single class or no words."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    targets = label_targets(train, labels, "the training set", known="the model")
    most_common = Counter(example.labels for example in train).most_common(1)[0][0]
    majority_row = targets[next(i for i, e in enumerate(train) if e.labels == most_common)]
    majority = majority_row.expand(len(test), *majority_row.shape).clone()
    multi_label = problem_type_of(train) == MULTI_LABEL
    if len(set(map(tuple, targets.tolist())) if multi_label else set(targets.tolist())) < 2:
        return {"majority": majority, "tfidf_logreg": majority}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        features = vectorizer.fit_transform([_input_text(e) for e in train])
    except ValueError:  # no word in any training text
        return {"majority": majority, "tfidf_logreg": majority}
    classifier = LogisticRegression(max_iter=1000)
    if multi_label:
        classifier = OneVsRestClassifier(classifier)
    with warnings.catch_warnings():  # a label true in every or no training row is predicted constant, with a warning
        warnings.simplefilter("ignore")
        classifier.fit(features, targets.numpy())
        predicted = torch.as_tensor(classifier.predict(vectorizer.transform([_input_text(e) for e in test])))
    return {"majority": majority, "tfidf_logreg": predicted.to(targets.dtype)}


def baselines(examples: Sequence[AnyExample], labels: list[str],
              train_examples: Sequence[AnyExample] | None = None) -> dict | None:
    """{"majority": {...}, "tfidf_logreg": {...}}, each {"accuracy", "macro_f1", "fitted_on"}, scored on `examples`
    like the model: fitted on `train_examples`, or without them on the other folds of a BASELINE_FOLDS-fold
    cross-validation of `examples` (seeded). None with no training examples and fewer than 2 examples."""
    targets = label_targets(examples, labels, "the evaluation set")
    source: BaselineSource
    if train_examples:
        predictions, source = _baseline_predictions(train_examples, examples, labels), "train"
    elif len(examples) >= 2:
        from sklearn.model_selection import KFold

        predictions, source = {}, "cross_validation"
        folds = KFold(n_splits=min(BASELINE_FOLDS, len(examples)), shuffle=True, random_state=0)
        for train_index, test_index in folds.split(range(len(examples))):
            fold = _baseline_predictions([examples[i] for i in train_index], [examples[i] for i in test_index],
                                         labels)
            for name, predicted in fold.items():
                predictions.setdefault(name, torch.empty_like(targets))[torch.as_tensor(test_index)] = predicted
    else:
        return None
    scores = multi_label_metrics if problem_type_of(examples) == MULTI_LABEL else classification_metrics
    return {name: {key: scores(targets, predicted, labels)[key] for key in ("accuracy", "macro_f1")} |
            {"fitted_on": source} for name, predicted in predictions.items()}


def quality_warnings(metrics: dict, baseline: dict | None) -> list[dict]:
    """A "below_majority_baseline" warning when the model's accuracy is not MAJORITY_MARGIN above the majority's."""
    if baseline is None or metrics["accuracy"] >= baseline["majority"]["accuracy"] + MAJORITY_MARGIN:
        return []
    accuracy, majority = metrics["accuracy"], baseline["majority"]["accuracy"]
    return [{"kind": "below_majority_baseline",
             "message": f"accuracy {accuracy:.3f} does not beat always answering the most common label "
                        f"({majority:.3f}) by {MAJORITY_MARGIN}: the model has learned little beyond the label counts "
                        "(more data, more epochs or a larger learning rate may help)",
             "accuracy": accuracy, "majority_accuracy": majority, "margin": MAJORITY_MARGIN}]


# --- the report -----------------------------------------------------------------------------------------------------

def build_report(logits: torch.Tensor, examples: Sequence[AnyExample], labels: list[str], *,
                 temperature: float = 1.0, thresholds: Sequence[float] | None = None,
                 train_examples: Sequence[AnyExample] | None = None, fitted_here: bool = False) -> dict:
    """The report (module doc) of a model with (N, L) `logits` on the N `examples`, whose class ids are `labels`'
    order. `temperature`: the model's (single-label; calibration shows ECE at 1 and at it). `thresholds`: a
    multi-label model's, in label order (None: DEFAULT_THRESHOLD each). `fitted_here`: the temperature or the
    thresholds were fitted on these rows (the module doc's cross-fitting). `train_examples`: what the model was
    trained on, for the baselines (None: cross-validated on `examples`). DataError naming labels `labels` lacks."""
    problem_type = problem_type_of(examples)
    multi_label = problem_type == MULTI_LABEL
    evaluated = logit_metrics(logits, examples, labels, thresholds)
    targets = label_targets(examples, labels, "the evaluation set")
    metrics = {key: evaluated[key] for key in ("accuracy", "macro_f1", "weighted_f1", "loss")}
    if multi_label:
        metrics |= {"micro_f1": evaluated["micro_f1"], "subset_accuracy": evaluated["accuracy"]}
        temperature = 1.0
    served = _probabilities(logits, problem_type, temperature)
    used_thresholds = list(evaluated["thresholds"].values()) if multi_label else None
    baseline = baselines(examples, labels, train_examples)
    return {
        "problem_type": problem_type,
        "n_rows": len(examples),
        "labels": list(labels),
        "metrics": metrics,
        "per_class": [{"label": label, **figures} for label, figures in evaluated["per_class"].items()],
        "confusion_matrix": None if multi_label else evaluated["confusion"],
        "calibration": _calibration(logits, targets, problem_type, temperature,
                                    cross_fitted=fitted_here and not multi_label),
        "coverage": None if multi_label else coverage(*_confidence_outcomes(served, targets, SINGLE_LABEL)),
        "confident_mistakes": confident_mistakes(examples, labels, served, targets, used_thresholds),
        "baselines": baseline,
        "thresholds": evaluated.get("thresholds"),
        "cross_fitted_metrics": _cross_fitted_metrics(logits, targets, labels) if fitted_here and multi_label else None,
        "warnings": quality_warnings(metrics, baseline),
    }


def _cross_fitted_metrics(logits: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> dict:
    decided = multi_label_metrics(targets, cross_fitted_decisions(logits, targets), labels)
    return {"subset_accuracy": decided["accuracy"], "micro_f1": decided["micro_f1"], "macro_f1": decided["macro_f1"]}


def evaluate_model_dir(model_dir: str | Path, examples: Sequence[AnyExample], *,
                       train_examples: Sequence[AnyExample] | None = None, batch_size: int = 64,
                       device: str = "cpu", thresholds: dict[str, float] | None = None) -> dict:
    """build_report of the saved classifier in `model_dir` on the examples, with its own temperature and (multi-label)
    thresholds, `thresholds` ({label: threshold}, e.g. a model's hand-set ones) over those. DataError when the
    examples are of the other problem type or have labels the model lacks (named); CheckpointError when the
    directory cannot be loaded."""
    loaded = load_model(model_dir, device=device)
    check_problem_type(examples, loaded.problem_type, "the evaluation set", f"the model in {model_dir}")
    label_targets(examples, loaded.labels, "the evaluation set", known="the model")  # names unknown labels first
    logits = predict_logits(loaded.model, loaded.tokenizer, examples, loaded.max_len, batch_size)
    return build_report(logits, examples, loaded.labels, temperature=loaded.temperature,
                        thresholds=thresholds_over(loaded.labels, loaded.thresholds, thresholds),
                        train_examples=train_examples)


def save_report(model_dir: Path, report: dict) -> Path:
    """Writes the report as model_dir/REPORT_FILE (through a temporary file and a rename); returns its path."""
    tmp = model_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return tmp.replace(model_dir / REPORT_FILE)
