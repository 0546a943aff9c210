"""bench/sweep.py: its settings and its refusal of the benchmark's own subsets, and one real (tiny) tuning run."""
from __future__ import annotations

import json

import pytest
import torch

from bench.sweep import config_with, main


def test_settings_set_hyperparameters_and_bad_ones_are_refused_by_name():
    cfg = config_with(["learning_rate=1e-4", "pooling=mean", "eval_steps=null"])
    assert (cfg.learning_rate, cfg.pooling, cfg.eval_steps, cfg.epochs) == (1e-4, "mean", None, "auto")
    with pytest.raises(SystemExit, match="'lr=1e-4': expected name=value with a TrainConfig field name"):
        config_with(["lr=1e-4"])
    with pytest.raises(SystemExit, match="batch_size"):
        config_with(["batch_size=0"])


@pytest.mark.parametrize(("argv", "message"), [
    (["sst2-720", "--subset-seeds", "10", "2"], "draw the benchmark's own SST-2 720 subsets"),
    (["sst2-720", "--rows", "0"], "0 is not a row count >= 1"),
    (["banking77", "--device", "gpu"], "invalid choice: 'gpu'"),
])
def test_bad_arguments_are_refused_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: cuda is available")
def test_cuda_without_a_gpu_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sst2-720", "--rows", "8", "--device", "cuda", "--out", str(tmp_path / "sweep.jsonl")])
    assert exit_info.value.code == 2 and "no CUDA GPU is available" in capsys.readouterr().err


def test_a_run_trains_the_base_model_and_scores_the_dev_rows(tmp_path, capsys):
    out = tmp_path / "sweep.jsonl"
    main(["sst2-720", "--rows", "40", "--subset-seeds", "10", "--seeds", "7", "--set", "epochs=1", "--out", str(out)])
    [run] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (run["case"], run["subset_seed"], run["seed"], run["set"]) == ("sst2-720", 10, 7, ["epochs=1"])
    assert run["about"] == "sst2/train.tsv rows drawn with seed 10; sst2/dev.tsv (872)"
    assert 0 <= run["accuracy"] <= 1 and run["seconds"] > 0
    assert "sst2-720 epochs=1: accuracy mean" in capsys.readouterr().err
