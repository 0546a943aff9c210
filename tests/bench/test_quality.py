"""bench/quality.py's own pieces that no training run checks: the multi-label metrics of the transformers side and
the GoEmotions files converted as a user would."""
from __future__ import annotations

import pytest
import torch

from bench.model_core import multi_hot
from bench.quality import multi_label_metrics, with_header
from model_core.data import read_table


def test_multi_label_metrics_count_exact_matches_and_average_f1_over_every_label():
    gold = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0]]).bool()
    predicted = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 1]]).bool()
    metrics = multi_label_metrics(gold, predicted)
    assert metrics["accuracy"] == pytest.approx(1 / 3)  # only the first row is exactly right
    # label 0: F1 1; label 1: one of two found, nothing wrong predicted, F1 2/3; label 2: never true, once predicted, 0
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_goemotions_rows_read_with_a_header_and_give_multi_hot_targets(tmp_path):
    source = tmp_path / "raw.tsv"
    source.write_text("so happy for you\t17,1\teabc\nugh, fine\t27\teabd\n", encoding="utf-8")
    examples = read_table(with_header(source, tmp_path / "upload.tsv", rows=None)).examples
    assert [(e.text, e.label) for e in examples] == [("so happy for you", "17,1"), ("ugh, fine", "27")]
    targets = multi_hot(examples, [str(i) for i in range(28)], ",")
    assert targets.shape == (2, 28)
    assert targets[0].nonzero().flatten().tolist() == [1, 17]
    assert targets[1].nonzero().flatten().tolist() == [27]
