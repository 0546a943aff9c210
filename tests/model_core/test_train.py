import pytest
import torch
from safetensors.torch import load_file

from model_core.checkpoint import CheckpointError, load_model
from model_core.config import TrainConfig
from model_core.data import DataError, Example
from model_core.evaluate import classification_metrics, evaluate
from model_core.train import TrainingStopped, finetune
from tests.factories import make_tiny_base, sentiment_examples

TRAIN = sentiment_examples(48, seed=0)
EVAL = sentiment_examples(16, seed=1)


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
