import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO
from tests.factories import make_tiny_base, sentiment_examples, topic_examples, write_tsv


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "model_core", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    make_tiny_base(directory / "base")
    write_tsv(directory / "train.tsv", sentiment_examples(48, seed=0))
    write_tsv(directory / "dev.tsv", sentiment_examples(16, seed=1))
    return directory


@pytest.fixture(scope="module")
def trained(workdir) -> dict:
    result = cli("train", "--train", "train.tsv", "--eval", "dev.tsv", "--base", "base", "--out", "run",
                 "--epochs", "10", "--batch-size", "8", "--lr", "3e-3", "--max-len", "16", "--save-steps", "25",
                 cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "loss=" in result.stderr  # the progress bar shows the live loss
    return json.loads(result.stdout)


def test_train_prints_final_eval_metrics(trained, workdir):
    assert trained["steps"] == 60 and trained["model_dir"] == "run/model"
    assert trained["accuracy"] >= 0.9 and set(trained["per_class"]) == {"neg", "pos"}
    assert (workdir / "run" / "model" / "config.json").is_file()
    assert sorted(p.name for p in (workdir / "run" / "checkpoints").iterdir()) == ["step-25", "step-50"]


def test_resume_continues_from_the_newest_checkpoint(trained, workdir):
    result = cli("train", "--train", "train.tsv", "--eval", "dev.tsv", "--base", "base", "--out", "run",
                 "--epochs", "10", "--batch-size", "8", "--lr", "3e-3", "--max-len", "16", "--save-steps", "25",
                 "--resume", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "50/60" in result.stderr and json.loads(result.stdout)["steps"] == 60


def test_eval_reports_metrics_of_the_saved_model(trained, workdir):
    result = cli("eval", "--model", "run/model", "--data", "dev.tsv", cwd=workdir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 16 and metrics["accuracy"] == trained["accuracy"]
    assert {"loss", "macro_f1", "per_class"} <= metrics.keys()


def test_train_saves_the_report_and_eval_prints_it_again(trained, workdir):
    saved = json.loads((workdir / trained["report"]).read_text())
    assert saved["n_rows"] == 16 and saved["metrics"]["accuracy"] == trained["accuracy"]
    result = cli("eval", "--model", "run/model", "--data", "dev.tsv", "--report", cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"] == pytest.approx(saved["metrics"])
    assert report["calibration"]["temperature"] == saved["calibration"]["temperature"]
    assert report["baselines"]["majority"]["fitted_on"] == "cross_validation"  # the CLI has no training rows


def test_predict_abstains_below_min_confidence(trained, workdir):
    result = cli("predict", "--model", "run/model", "--min-confidence", "1", "great film", cwd=workdir)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["abstained"] is True and row["label"] is None and set(row["scores"]) == {"neg", "pos"}
    answered = cli("predict", "--model", "run/model", "--min-confidence", "0", "great film", cwd=workdir)
    assert json.loads(answered.stdout) == {"label": "pos", "score": row["score"], "abstained": False}
    refused = cli("predict", "--model", "run/model", "--min-confidence", "1.5", "great film", cwd=workdir)
    assert refused.returncode == 2 and "[0, 1]" in refused.stderr


def test_predict_one_json_line_per_input(trained, workdir):
    (workdir / "inputs.txt").write_text("the movie was good\r\nreally awful plot\n\n", encoding="utf-8")
    from_file = cli("predict", "--model", "run/model", "--file", "inputs.txt", "--all-scores", cwd=workdir)
    assert from_file.returncode == 0, from_file.stderr
    rows = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert [row["label"] for row in rows[:2]] == ["pos", "neg"] and len(rows) == 3
    assert all(sum(row["scores"].values()) == pytest.approx(1.0) for row in rows)
    from_args = cli("predict", "--model", "run/model", "great film", "boring", cwd=workdir)
    assert [json.loads(line)["label"] for line in from_args.stdout.splitlines()] == ["pos", "neg"]
    assert "scores" not in from_args.stdout


@pytest.fixture(scope="module")
def trained_multi_label(workdir) -> dict:
    write_tsv(workdir / "topics-train.tsv", topic_examples(64, seed=0))
    write_tsv(workdir / "topics-dev.tsv", topic_examples(32, seed=1))
    result = cli("train", "--train", "topics-train.tsv", "--eval", "topics-dev.tsv", "--label-delimiter", ",",
                 "--allow-no-label", "--base", "base", "--out", "topics", "--epochs", "3", "--batch-size", "8",
                 "--lr", "3e-3", "--max-len", "16", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_multi_label_train_eval_and_predict(trained_multi_label, workdir):
    thresholds = json.loads((workdir / "topics" / "model" / "thresholds.json").read_text())
    assert trained_multi_label["thresholds"] == thresholds and list(thresholds) == ["neg", "pos", "strong"]
    assert {"micro_f1", "macro_f1", "accuracy", "per_class"} <= trained_multi_label.keys()
    evaluation = cli("eval", "--model", "topics/model", "--data", "topics-dev.tsv", "--label-delimiter", ",",
                     "--allow-no-label", cwd=workdir)
    assert evaluation.returncode == 0, evaluation.stderr
    metrics = json.loads(evaluation.stdout)
    assert metrics["thresholds"] == thresholds  # the model's own, not tuned again
    assert metrics["macro_f1"] == pytest.approx(trained_multi_label["macro_f1"])
    predicted = cli("predict", "--model", "topics/model", "a great film", "the plot", cwd=workdir)
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(rows) == 2 and all(set(row) == {"labels", "scores"} for row in rows)
    for row in rows:
        assert row["labels"] == [label for label, score in row["scores"].items() if score >= thresholds[label]]
    wrong_kind = cli("eval", "--model", "topics/model", "--data", "dev.tsv", cwd=workdir)
    assert wrong_kind.returncode == 2
    assert "dev.tsv is single-label but the model topics/model is multi-label" in wrong_kind.stderr


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["train", "--train", "missing.tsv", "--out", "x"], "missing.tsv"),
        ({"bad.tsv": b"label\ttext\n1\tok\n0\t\xff\xfe\n"}, ["train", "--train", "bad.tsv", "--out", "x"],
         "line 3: not valid UTF-8"),
        ({"bad.tsv": b"label\ttext\n1\tok\n0\tno\textra\n"}, ["train", "--train", "bad.tsv", "--out", "x"],
         "line 3: expected 2 fields, got 3"),
        ({"odd.tsv": b"label\ttext\nmeh\tthe plot\npos\tgood\n"},
         ["train", "--train", "train.tsv", "--eval", "odd.tsv", "--base", "base", "--out", "x"], "'meh'"),
        ({"unlabeled.tsv": b"label\ttext\npos,neg\tok\n , \tnone\n"},
         ["train", "--train", "unlabeled.tsv", "--label-delimiter", ",", "--out", "x"], "line 3: no label in ' , '"),
        (None, ["train", "--train", "train.tsv", "--base", "base", "--out", "x", "--warmup", "1.5"], "warmup"),
        (None, ["train", "--train", "train.tsv", "--base", "bert-huge", "--out", "x"], "unknown base model"),
        (None, ["predict", "--model", "nowhere", "text"], "nowhere"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workdir, setup, args, message):
    for name, content in (setup or {}).items():
        (workdir / name).write_bytes(content)
    result = cli(*args, cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert not (workdir / "x").exists()


def test_train_with_dedupe_drops_repeated_rows_and_prints_the_warnings(workdir):
    unique = list({example.text: example for example in sentiment_examples(60, seed=2)}.values())[:40]
    write_tsv(workdir / "repeated.tsv", unique + unique[:8])  # lines 42..49 repeat lines 2..9
    result = cli("train", "--train", "repeated.tsv", "--base", "base", "--out", "dedupe-run", "--epochs", "1",
                 "--batch-size", "8", "--max-len", "16", "--dedupe", "true", cwd=workdir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 5  # 40 rows in batches of 8; the 48 rows would take 6 steps
    [dropped] = summary["warnings"]
    assert (dropped["kind"], dropped["file"], dropped["count"]) == ("deduplicated", "train", 8)
    assert dropped["duplicates"] == 8 and dropped["lines"] == list(range(42, 50))
