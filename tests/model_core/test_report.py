"""The evaluation report: its figures against scikit-learn and a plain re-computation, temperature scaling, the
baselines and their warning, and the report of a small trained model."""
import json
import random
import shutil

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from model_core.checkpoint import CALIBRATION_FILE, load_model, save_temperature
from model_core.config import TrainConfig
from model_core.data import DataError, Example, MultiLabelExample
from model_core.evaluate import tune_thresholds
from model_core.predict import Predictor
from model_core.report import (
    COVERAGE_LEVELS,
    ECE_BINS,
    MAJORITY_MARGIN,
    REPORT_FILE,
    build_report,
    calibration_folds,
    cross_fitted_decisions,
    cross_fitted_probabilities,
    evaluate_model_dir,
    fit_temperature,
)
from model_core.train import finetune
from tests.factories import (
    make_tiny_base,
    minilm_with_random_head,
    save_minilm_classifier,
    sentiment_examples,
    topic_examples,
)

LABELS = ["a", "b", "c"]


def examples_with_logits(n: int, seed: int, scale: float) -> tuple[list[Example], torch.Tensor]:
    """n examples with labels drawn 3:2:1 and logits (n, 3) that favour the true class 70% of the time, times
    `scale` (a large scale: an over-confident model)."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    examples, rows = [], []
    for i in range(n):
        label = rng.choice("aaabbc")
        examples.append(Example(f"text {i} {label} word{rng.randint(0, 5)}", None, label))
        favoured = LABELS.index(label) if rng.random() < 0.7 else rng.randrange(3)
        row = torch.randn(3, generator=generator) * 0.5
        row[favoured] += 1.0
        rows.append(row * scale)
    return examples, torch.stack(rows)


def ece_by_hand(confidence: np.ndarray, correct: np.ndarray) -> float:
    total = 0.0
    for i in range(ECE_BINS):
        upper_ok = confidence <= (i + 1) / ECE_BINS if i == ECE_BINS - 1 else confidence < (i + 1) / ECE_BINS
        in_bin = (confidence >= i / ECE_BINS) & upper_ok
        if in_bin.any():
            total += in_bin.sum() / len(confidence) * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return total


def test_single_label_report_matches_scikit_learn_and_a_plain_recomputation():
    examples, logits = examples_with_logits(60, seed=0, scale=1.0)
    train, _ = examples_with_logits(90, seed=1, scale=1.0)
    report = build_report(logits, examples, LABELS, temperature=1.5, train_examples=train)

    y_true = [LABELS.index(e.label) for e in examples]
    y_pred = logits.argmax(dim=-1).numpy()
    assert report["problem_type"] == "single_label_classification" and report["n_rows"] == 60
    assert report["labels"] == LABELS
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="weighted"))
    assert m["loss"] == pytest.approx(skm.log_loss(y_true, logits.softmax(-1).numpy(), labels=[0, 1, 2]), rel=1e-5)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    assert [row["label"] for row in report["per_class"]] == LABELS
    for i, row in enumerate(report["per_class"]):
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert row["support"] == support[i]
    assert report["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred).tolist()

    calibrated = (logits / 1.5).softmax(-1).numpy()
    top, correct = calibrated.max(axis=1), (y_pred == np.array(y_true)).astype(float)
    calibration = report["calibration"]
    assert calibration["temperature"] == 1.5
    assert calibration["ece_after"] == pytest.approx(ece_by_hand(top, correct))
    assert calibration["ece_before"] == pytest.approx(ece_by_hand(logits.softmax(-1).numpy().max(axis=1), correct))
    assert len(calibration["reliability"]) == ECE_BINS
    assert sum(row["count"] for row in calibration["reliability"]) == 60

    assert [row["min_confidence"] for row in report["coverage"]] == list(COVERAGE_LEVELS)
    for row in report["coverage"]:
        kept = top >= row["min_confidence"]
        assert row["coverage"] == pytest.approx(kept.mean())
        assert row["accuracy"] == (pytest.approx(correct[kept].mean()) if kept.any() else None)

    mistakes = report["confident_mistakes"]
    assert len(mistakes) == min(20, int((1 - correct).sum()))
    scores = [mistake["score"] for mistake in mistakes]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(top[correct == 0].max())
    assert all(mistake["true"] != mistake["predicted"] for mistake in mistakes)

    majority = report["baselines"]["majority"]
    assert majority["fitted_on"] == "train"
    most_common = max(LABELS, key=[e.label for e in train].count)
    assert majority["accuracy"] == pytest.approx(sum(e.label == most_common for e in examples) / 60)
    assert 0 <= report["baselines"]["tfidf_logreg"]["accuracy"] <= 1
    assert report["thresholds"] is None
    json.dumps(report)  # stored as JSON as it is


def test_multi_label_report_matches_scikit_learn():
    examples = topic_examples(40, seed=3)
    labels = ["neg", "pos", "strong"]
    truth = np.array([[label in e.labels for label in labels] for e in examples], dtype=float)
    logits = torch.tensor(truth * 2 - 1) + torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    thresholds = [0.5, 0.4, 0.6]
    report = build_report(logits.float(), examples, labels, thresholds=thresholds, temperature=3.0)

    predicted = (logits.sigmoid().numpy() >= np.array(thresholds)).astype(int)
    m = report["metrics"]
    assert m["subset_accuracy"] == m["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert m["micro_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="micro"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(truth, predicted, average="weighted"))
    assert [row["support"] for row in report["per_class"]] == truth.sum(axis=0).astype(int).tolist()
    assert report["confusion_matrix"] is None and report["coverage"] is None
    assert report["thresholds"] == pytest.approx(dict(zip(labels, thresholds, strict=True)))
    assert report["calibration"]["temperature"] == 1.0  # multi-label scores are not temperature-scaled
    assert report["calibration"]["ece_after"] == report["calibration"]["ece_before"]
    assert report["baselines"]["majority"]["fitted_on"] == "cross_validation"
    assert report["cross_fitted_metrics"] is None  # the thresholds were given: tuned elsewhere
    for mistake in report["confident_mistakes"]:
        assert sorted(mistake["true"]) != sorted(mistake["predicted"])


def test_a_multi_label_report_on_the_rows_its_thresholds_were_tuned_on_adds_cross_fitted_metrics():
    examples = topic_examples(60, seed=5)
    labels = ["neg", "pos", "strong"]
    truth = torch.tensor([[label in e.labels for label in labels] for e in examples], dtype=torch.float)
    logits = truth * 2 - 1 + 1.5 * torch.randn(60, 3, generator=torch.Generator().manual_seed(1))
    folds = calibration_folds(len(examples))
    flipped = truth.clone()
    flipped[folds == 2] = 1 - flipped[folds == 2]
    before, after = cross_fitted_decisions(logits, truth), cross_fitted_decisions(logits, flipped)
    assert torch.equal(before[folds == 2], after[folds == 2])  # their decisions never saw their labels
    assert not torch.equal(before[folds != 2], after[folds != 2])

    tuned = tune_thresholds(logits.sigmoid(), truth).tolist()  # as training tunes them on its held-out rows
    report = build_report(logits, examples, labels, thresholds=tuned, fitted_here=True)
    crossed = report["cross_fitted_metrics"]
    assert crossed["macro_f1"] == pytest.approx(skm.f1_score(truth.numpy(), before.numpy(), average="macro"))
    assert crossed["micro_f1"] == pytest.approx(skm.f1_score(truth.numpy(), before.numpy(), average="micro"))
    assert crossed["subset_accuracy"] == pytest.approx(skm.accuracy_score(truth.numpy(), before.numpy()))
    assert crossed["macro_f1"] < report["metrics"]["macro_f1"]  # thresholds tuned on the rows flatter them


def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model():
    examples, logits = examples_with_logits(200, seed=2, scale=6.0)
    targets = torch.tensor([LABELS.index(e.label) for e in examples])
    temperature = fit_temperature(logits, targets)
    assert temperature > 2  # the logits were scaled up 6x
    calibration = build_report(logits, examples, LABELS, temperature=temperature)["calibration"]
    assert calibration["ece_after"] < calibration["ece_before"] / 2
    assert not calibration["cross_fitted"]  # the temperature was given: fitted elsewhere


def test_a_report_on_the_rows_the_temperature_was_fitted_on_calibrates_no_row_on_its_own_label():
    examples, logits = examples_with_logits(60, seed=4, scale=6.0)
    targets = torch.tensor([LABELS.index(e.label) for e in examples])
    folds = calibration_folds(len(examples))
    assert sorted(torch.bincount(folds).tolist()) == [12] * 5
    flipped = targets.clone()
    flipped[folds == 0] = (flipped[folds == 0] + 1) % 3  # other labels for one fold's rows
    before, after = cross_fitted_probabilities(logits, targets), cross_fitted_probabilities(logits, flipped)
    assert torch.equal(before[folds == 0], after[folds == 0])  # their scores never saw their labels
    assert not torch.allclose(before[folds != 0], after[folds != 0])  # the other folds' temperatures did

    temperature = fit_temperature(logits, targets)
    calibration = build_report(logits, examples, LABELS, temperature=temperature,
                               fitted_here=True)["calibration"]
    top, predicted = before.max(dim=-1)
    assert calibration["cross_fitted"] and calibration["temperature"] == temperature
    assert calibration["ece_after"] == pytest.approx(ece_by_hand(top.numpy(), (predicted == targets).numpy()))


def test_a_model_that_does_not_beat_the_majority_baseline_is_warned_about():
    examples = [Example(f"row {i}", None, "a" if i % 4 else "b") for i in range(40)]  # 75% "a"
    always_b = torch.tensor([[0.0, 2.0, 0.0]]).expand(40, 3)
    warnings = build_report(always_b, examples, LABELS)["warnings"]
    assert [w["kind"] for w in warnings] == ["below_majority_baseline"]
    assert warnings[0]["majority_accuracy"] == 0.75 and warnings[0]["margin"] == MAJORITY_MARGIN

    right = torch.tensor([[2.0, 0.0, 0.0] if e.label == "a" else [0.0, 2.0, 0.0] for e in examples])
    assert build_report(right, examples, LABELS)["warnings"] == []


def test_labels_the_model_lacks_are_named():
    with pytest.raises(DataError, match="'zebra'"):
        build_report(torch.zeros(1, 3), [Example("x", None, "zebra")], LABELS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    base = make_tiny_base(tmp_path_factory.mktemp("tiny-base"))
    cfg = TrainConfig(epochs=6, batch_size=8, learning_rate=3e-3, max_len=16, seed=3)
    train, evaluation = sentiment_examples(48, seed=0), sentiment_examples(24, seed=1)
    return finetune(train, evaluation, base, tmp_path_factory.mktemp("run"), cfg, device="cpu"), train, evaluation


def test_training_saves_the_temperature_and_the_report_of_the_saved_model(trained):
    result, train, evaluation = trained
    report = result.report
    assert json.loads((result.model_dir / REPORT_FILE).read_text()) == report
    temperature = json.loads((result.model_dir / CALIBRATION_FILE).read_text())["temperature"]
    assert report["calibration"]["temperature"] == temperature == load_model(result.model_dir).temperature
    assert report["calibration"]["cross_fitted"]  # the temperature was fitted on these rows
    assert report["metrics"]["accuracy"] == pytest.approx(result.eval.accuracy)
    assert report["baselines"]["majority"] == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3),
                                               "fitted_on": "train"}

    predictor = Predictor.load(result.model_dir)
    probabilities = predictor.predict_proba([(e.text, None) for e in evaluation]).numpy()
    y_true = [predictor.labels.index(e.label) for e in evaluation]
    y_pred = probabilities.argmax(axis=1)
    assert report["metrics"]["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert report["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()
    top = probabilities.max(axis=1)  # the served probabilities are the calibrated ones
    assert report["coverage"][0]["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))

    again = evaluate_model_dir(result.model_dir, evaluation, train_examples=train)  # the temperature as given
    assert again["metrics"] == pytest.approx(report["metrics"])
    assert not again["calibration"]["cross_fitted"]
    assert again["calibration"]["ece_after"] == pytest.approx(
        ece_by_hand(top, (y_pred == np.array(y_true)).astype(float)), abs=1e-5)


def test_evaluating_a_model_dir_refuses_other_labels_and_problem_types(trained):
    result, _, _ = trained
    with pytest.raises(DataError, match="'meh'"):
        evaluate_model_dir(result.model_dir, [Example("fine", None, "meh")])
    with pytest.raises(DataError, match="multi-label"):
        evaluate_model_dir(result.model_dir, [MultiLabelExample("fine", None, ("pos",))])


def test_the_predictor_divides_the_logits_by_the_saved_temperature(saved_classifier_dir, tmp_path):
    calibrated_dir = shutil.copytree(saved_classifier_dir, tmp_path / "model")
    save_temperature(calibrated_dir, 2.0)
    inputs = [("a gripping film", None), ("dull", None)]
    raw = Predictor.load(saved_classifier_dir).predict_proba(inputs)
    calibrated = Predictor.load(calibrated_dir).predict_proba(inputs)
    assert torch.allclose(calibrated, (raw.log() / 2.0).softmax(dim=-1), atol=1e-5)
    assert not torch.allclose(calibrated, raw, atol=1e-3)


def test_evaluating_a_multi_label_model_dir_uses_its_thresholds_with_hand_set_ones_over_them(tmp_path):
    labels = ["neg", "pos", "strong"]
    model_dir = save_minilm_classifier(tmp_path / "model", minilm_with_random_head(3, seed=2, head_std=2.0), labels,
                                       32, thresholds={"neg": 0.3, "pos": 0.6, "strong": 0.7})
    examples = topic_examples(24, seed=5)
    report = evaluate_model_dir(model_dir, examples, thresholds={"pos": 0.0})
    assert report["thresholds"] == pytest.approx({"neg": 0.3, "pos": 0.0, "strong": 0.7})
    pos = next(row for row in report["per_class"] if row["label"] == "pos")
    assert pos["recall"] == 1.0 and pos["precision"] == pytest.approx(pos["support"] / 24)  # every row predicted pos
