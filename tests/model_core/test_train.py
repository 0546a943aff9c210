import json

import pytest
import torch
from safetensors.torch import load_file

from model_core.checkpoint import CheckpointError, load_model
from model_core.config import TrainConfig
from model_core.data import DataError, Example, MultiLabelExample
from model_core.evaluate import classification_metrics, evaluate, multi_label_metrics, tune_thresholds
from model_core.predict import Predictor, prediction_row
from model_core.train import TrainingStopped, finetune
from tests.factories import make_tiny_base, sentiment_examples, topic_examples

TRAIN = sentiment_examples(48, seed=0)
EVAL = sentiment_examples(16, seed=1)
TOPICS_TRAIN = topic_examples(96, seed=0)
TOPICS_EVAL = topic_examples(32, seed=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest, and least disturbed by other processes, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return make_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def test_tiny_model_learns_separable_task_to_full_train_accuracy(tiny_base, tmp_path):
    cfg = TrainConfig(epochs=12, batch_size=8, learning_rate=3e-3, warmup_ratio=0.1, max_len=16, seed=3)
    steps, evals, started = [], [], []
    result = finetune(TRAIN, EVAL, tiny_base, tmp_path, cfg, device="cpu",
                      on_start=lambda total, device, choices: started.append((total, device, set(choices))),
                      on_step=steps.append, on_eval=evals.append)
    auto_left = {"eval_steps", "early_stopping_patience", "pooling", "class_weighting"}  # the test gives the rest
    assert started == [(72, "cpu", auto_left)] and result.total_steps == result.steps == 72
    assert result.choices["early_stopping_patience"]["value"] is None  # given epochs run in full
    assert [s.step for s in steps] == list(range(1, 73)) and steps[-1].epoch == 12.0
    assert steps[0].learning_rate == 0.0 and max(s.learning_rate for s in steps) == pytest.approx(3e-3)
    assert [e.step for e in evals] == [6 * k for k in range(1, 13)]  # after every epoch
    assert result.eval.macro_f1 == max(e.macro_f1 for e in evals)

    loaded = load_model(result.model_dir)
    assert loaded.labels == ["neg", "pos"] and loaded.max_len == 16
    metrics = evaluate(loaded.model, loaded.tokenizer, TRAIN, loaded.labels, loaded.max_len)
    assert metrics["accuracy"] == 1.0
    assert metrics["loss"] < steps[0].loss
    saved_eval = evaluate(loaded.model, loaded.tokenizer, EVAL, loaded.labels, loaded.max_len)
    assert saved_eval["macro_f1"] == pytest.approx(result.eval.macro_f1)  # the saved model is the best one


def test_tiny_model_learns_a_multi_label_task_and_saves_the_tuned_thresholds(tiny_base, tmp_path):
    assert {len(e.labels) for e in TOPICS_TRAIN} == {0, 1, 2}
    cfg = TrainConfig(epochs=60, batch_size=8, learning_rate=3e-3, warmup_ratio=0.0, max_len=16, seed=1)
    evals = []
    result = finetune(TOPICS_TRAIN, TOPICS_EVAL, tiny_base, tmp_path, cfg, device="cpu", on_eval=evals.append)
    assert len(evals) == 60 and all(e.micro_f1 is not None and e.confusion is None for e in evals)
    assert all(e.thresholds == {"neg": 0.5, "pos": 0.5, "strong": 0.5} for e in evals)  # tuned after training
    best = max(evals, key=lambda e: e.macro_f1)
    assert result.eval.step == best.step and result.eval.macro_f1 >= best.macro_f1

    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    saved_thresholds = json.loads((result.model_dir / "thresholds.json").read_text())
    assert saved_thresholds == result.eval.thresholds and list(saved_thresholds) == ["neg", "pos", "strong"]
    loaded = load_model(result.model_dir)
    assert loaded.problem_type == "multi_label_classification"
    assert loaded.thresholds == list(saved_thresholds.values())
    learned = evaluate(loaded.model, loaded.tokenizer, TOPICS_TRAIN, loaded.labels, loaded.max_len,
                       thresholds=loaded.thresholds)
    assert learned["accuracy"] >= 0.95  # the exact label set of (almost) every training row
    held_out = evaluate(loaded.model, loaded.tokenizer, TOPICS_EVAL, loaded.labels, loaded.max_len,
                        thresholds=loaded.thresholds)
    assert held_out["macro_f1"] == pytest.approx(result.eval.macro_f1) and held_out["macro_f1"] > 0.9
    assert held_out["accuracy"] == pytest.approx(result.eval.accuracy)

    texts = ["a great film", "it was boring", "the plot was fine", "awful"]
    probabilities = Predictor(loaded).predict_proba([(text, None) for text in texts])
    assert probabilities[0].sum() > 1.5  # one sigmoid per label, not a softmax
    answers = [prediction_row(loaded.labels, row.tolist(), False, loaded.thresholds) for row in probabilities]
    assert [answer["labels"] for answer in answers] == [["pos", "strong"], ["neg"], [], ["neg", "strong"]]


def test_interrupted_then_resumed_run_ends_with_identical_weights(tiny_base, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-3, max_len=16, seed=5, save_steps=4)  # 18 steps
    full = finetune(TRAIN, None, tiny_base, tmp_path / "full", cfg, device="cpu")

    seen = []
    with pytest.raises(TrainingStopped):
        finetune(TRAIN, None, tiny_base, tmp_path / "cut", cfg, device="cpu", on_step=seen.append,
                 should_stop=lambda: len(seen) >= 10)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["step-4", "step-8"]
    assert not (tmp_path / "cut" / "model").exists()

    resumed_steps = []
    resumed = finetune(TRAIN, None, tiny_base, tmp_path / "cut", cfg, device="cpu", resume=True,
                       on_step=resumed_steps.append)
    assert resumed_steps[0].step == 9 and resumed_steps[-1].step == 18
    assert resumed_steps[0].loss == pytest.approx(seen[8].loss, abs=0.0)  # step 9 replays exactly
    assert resumed.train_loss == full.train_loss
    full_weights = load_file(full.model_dir / "model.safetensors")
    resumed_weights = load_file(resumed.model_dir / "model.safetensors")
    assert full_weights.keys() == resumed_weights.keys()
    assert all(torch.equal(full_weights[k], resumed_weights[k]) for k in full_weights)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["step-12", "step-16"]


def test_resume_refuses_a_checkpoint_of_a_different_run(tiny_base, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, max_len=16, save_steps=2)
    finetune(TRAIN, None, tiny_base, tmp_path, cfg)
    with pytest.raises(CheckpointError, match="n_train"):
        finetune(TRAIN[:40], None, tiny_base, tmp_path, cfg, resume=True)


def test_resume_accepts_a_checkpoint_that_names_the_settings_the_seed_way(tiny_base, tmp_path):
    """Checkpoints written before TrainConfig took the API's names (lr, warmup) still resume."""
    cfg = TrainConfig(epochs=1, batch_size=8, max_len=16, save_steps=2)  # 6 steps
    seen = []
    with pytest.raises(TrainingStopped):
        finetune(TRAIN, None, tiny_base, tmp_path, cfg, on_step=seen.append, should_stop=lambda: len(seen) >= 2)
    state_file = tmp_path / "checkpoints" / "step-2" / "state.pt"
    saved = torch.load(state_file, weights_only=True)
    config = saved["signature"]["config"]
    config["lr"], config["warmup"] = config.pop("learning_rate"), config.pop("warmup_ratio")
    torch.save(saved, state_file)
    resumed = []
    finetune(TRAIN, None, tiny_base, tmp_path, cfg, resume=True, on_step=resumed.append)
    assert resumed[0].step == 3


def test_pooling_auto_follows_the_base_model_and_the_run_records_what_it_used(tiny_base, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, max_len=16)
    auto = finetune(TRAIN, None, tiny_base, tmp_path / "auto", cfg)  # the tiny base is a classifier saved with cls
    assert (auto.pooling, auto.pooling_reason) == ("cls", "the base model declares cls pooling, the pooling it was "
                                                          "trained with")
    mean = finetune(TRAIN, None, tiny_base, tmp_path / "mean", cfg.model_copy(update={"pooling": "mean"}))
    assert (mean.pooling, mean.pooling_reason) == ("mean", "set explicitly")
    assert load_model(mean.model_dir).model.pooling == "mean"
    again = finetune(TRAIN, None, mean.model_dir, tmp_path / "again", cfg)  # a mean model as the base
    assert (again.pooling, again.pooling_reason) == ("mean", "the base model declares mean pooling, the pooling "
                                                             "it was trained with")


def test_early_stopping_keeps_the_best_evaluation(tiny_base, tmp_path):
    cfg = TrainConfig(epochs=10, batch_size=8, learning_rate=1e-9, max_len=16, eval_steps=2, early_stopping_patience=2)
    evals = []
    result = finetune(TRAIN, EVAL, tiny_base, tmp_path, cfg, on_eval=evals.append)
    assert len(evals) == 3 and result.steps == 6 < result.total_steps  # two evaluations without gain
    assert result.eval.step == 2


def test_eval_label_missing_from_training_is_named(tiny_base, tmp_path):
    with pytest.raises(DataError, match="'meh'"):
        finetune(TRAIN, EVAL + [Example("the plot", None, "meh")], tiny_base, tmp_path, TrainConfig())
    assert not tmp_path.joinpath("model").exists()


def test_eval_set_of_the_other_kind_is_named(tiny_base, tmp_path):
    with pytest.raises(DataError, match="the evaluation set is multi-label but the training set is single-label"):
        finetune(TRAIN, TOPICS_EVAL, tiny_base, tmp_path, TrainConfig())
    with pytest.raises(DataError, match="'extra'"):
        finetune(TOPICS_TRAIN, [MultiLabelExample("x", None, ("pos", "extra"))], tiny_base, tmp_path, TrainConfig())


def test_multi_label_metrics_match_hand_computed_values():
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    predictions = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]])
    metrics = multi_label_metrics(targets, predictions, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(2 / 4)  # rows 1 and 3 exactly right
    # a: TP 2 of 2 predicted, 2 true -> F1 1; b: TP 1 of 1, 2 true -> P 1 R 1/2 F1 2/3; c: TP 0 of 1, 1 true -> 0
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (4 + 5))  # 2 TP / (predicted + true)


def test_tuned_thresholds_maximise_each_labels_f1():
    probabilities = torch.tensor([[0.9, 0.9, 0.6], [0.8, 0.8, 0.6], [0.7, 0.7, 0.1],
                                  [0.4, 0.4, 0.1], [0.3, 0.3, 0.1], [0.2, 0.2, 0.1]])
    targets = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.float)
    thresholds = tune_thresholds(probabilities, targets)
    # label 0: the top 1..6 rows as positives give F1 2/4, 2/5, 4/6, 6/7, 6/8, 6/9: the top 4, cut between 0.4 and 0.3
    # label 1 has no positive: the default; label 2: its two 0.6 rows cannot be split, so both (F1 2/3)
    assert thresholds.tolist() == pytest.approx([0.35, 0.5, 0.35])


def test_classification_metrics_match_hand_computed_values():
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    metrics = classification_metrics(targets, predictions, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # per class F1: a: P=1 R=2/3 -> 0.8; b: P=1/2 R=1/2 -> 0.5; c: P=1/2 R=1 -> 2/3
    assert metrics["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    absent = classification_metrics(torch.tensor([0, 1]), torch.tensor([0, 1]), ["a", "b", "never"])
    assert absent["macro_f1"] == 1.0  # a class neither true nor predicted does not count
