"""model_core.data_checks on small handmade files: each warning's counts and file lines, dedupe's kept and dropped
rows, and a run's rows and warnings (dedupe before the held-out split, the overlap of evaluation and training rows)."""
from pathlib import Path

from model_core.config import TrainConfig
from model_core.data import Example, read_table
from model_core.data_checks import MAX_LISTED, dedupe, normalize, table_warnings, training_rows

# line 1 is the header; line 7 is blank (skipped, still counted)
FILMS_TSV = (
    "label\ttext\n"
    "pos\tA fine film\n"  # 2
    "neg\ta dull film\n"  # 3
    "pos\ta  FINE film\n"  # 4: line 2 up to case and spaces
    "pos\tA fine film\n"  # 5: line 2 exactly
    "neg\tok\n"  # 6: short
    "\n"  # 7
    "pos\tdull?\n"  # 8
    "neg\tDULL?\n"  # 9: line 8 up to case, with another label
    "neg\ta dull film\n"  # 10: line 3 exactly
)


def write(tmp_path: Path, content: str, name: str = "data.tsv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def by_kind(warnings: list[dict]) -> dict[str, dict]:
    kinds = [warning["kind"] for warning in warnings]
    assert len(kinds) == len(set(kinds)), kinds
    return {warning["kind"]: warning for warning in warnings}


def lines_of(examples) -> list[int]:
    return [example.line for example in examples]


def test_normalize_folds_case_and_whitespace():
    assert normalize("  A  fine\tFILM \r") == "a fine film" == normalize("a fine film")
    assert normalize("Straße") == normalize("STRASSE")  # casefold, not lower


def test_each_check_counts_rows_and_names_their_file_lines(tmp_path):
    table = read_table(write(tmp_path, FILMS_TSV))
    assert lines_of(table.examples) == [2, 3, 4, 5, 6, 8, 9, 10]
    warnings = table_warnings(table.examples)
    assert [warning["kind"] for warning in warnings] == ["duplicate_texts", "near_duplicate_texts", "label_conflicts",
                                                         "small_classes", "short_texts"]
    found = by_kind(warnings)

    exact = found["duplicate_texts"]
    assert (exact["count"], exact["lines"]) == (2, [5, 10])
    assert exact["examples"] == [{"text": "A fine film", "lines": [2, 5]}, {"text": "a dull film", "lines": [3, 10]}]
    assert "2 rows" in exact["message"] and "lines 5, 10" in exact["message"] and "dedupe" in exact["message"]

    near = found["near_duplicate_texts"]
    assert (near["count"], near["lines"]) == (2, [4, 9])
    assert near["examples"] == [{"texts": ["A fine film", "a  FINE film"], "lines": [2, 4, 5]},
                                {"texts": ["dull?", "DULL?"], "lines": [8, 9]}]

    conflicts = found["label_conflicts"]
    assert (conflicts["count"], conflicts["rows"], conflicts["lines"]) == (1, 2, [8, 9])
    assert conflicts["examples"] == [{"text": "dull?", "lines": [8, 9], "labels": ["pos", "neg"]}]
    assert "1 text has rows with different labels (lines 8, 9)" in conflicts["message"]

    small = found["small_classes"]
    assert (small["count"], small["labels"], small["min_rows"]) == (2, {"pos": 4, "neg": 4}, 10)
    assert "fewer than 10 rows ('pos': 4, 'neg': 4)" in small["message"]

    short = found["short_texts"]
    assert (short["count"], short["lines"], short["min_chars"]) == (1, [6], 3)
    assert "1 row has a text shorter than 3 characters (line 6)" in short["message"]
    assert all(set(warning) >= {"kind", "message", "count"} for warning in warnings)


def test_a_clean_table_has_no_warnings(tmp_path):
    rows = "".join(f"{label}\t{label} film number {i}\n" for i in range(10) for label in ("pos", "neg"))
    assert table_warnings(read_table(write(tmp_path, "label\ttext\n" + rows)).examples) == []


def test_csv_lines_are_where_each_record_starts(tmp_path):
    content = 'label,text\na,"two\nlines"\nb,one line\na,"two\nlines"\nb,"one line"\n'
    warnings = by_kind(table_warnings(read_table(write(tmp_path, content, "data.csv")).examples))
    assert warnings["duplicate_texts"]["lines"] == [5, 7]
    assert warnings["duplicate_texts"]["examples"] == [{"text": "two\nlines", "lines": [2, 5]},
                                                       {"text": "one line", "lines": [4, 7]}]


def test_text_pairs_are_part_of_the_text(tmp_path):
    content = "label\ttext_a\ttext_b\nyes\tp\tqqq\nno\tp\tqqq\nyes\tppp\tq r\nyes\tPPP\tq  R\nno\tppp\tother\n"
    warnings = by_kind(table_warnings(read_table(write(tmp_path, content)).examples))
    assert warnings["label_conflicts"]["examples"] == [{"text": "p", "text_pair": "qqq", "lines": [2, 3],
                                                        "labels": ["yes", "no"]}]
    assert warnings["near_duplicate_texts"]["lines"] == [5]  # line 6 has another pair: a text of its own
    assert warnings["short_texts"]["lines"] == [2, 3]  # "p" is short; the pair "q r" is not


def test_multi_label_conflicts_are_different_label_sets(tmp_path):
    content = "label\ttext\na,b\tgood film\nb, a\tgood film\na\tgood film\nb\tbad film\nb\tBad film\n"
    table = read_table(write(tmp_path, content), label_delimiter=",")
    warnings = by_kind(table_warnings(table.examples))
    assert warnings["duplicate_texts"]["lines"] == [3, 4]  # the same text, whatever its labels
    assert warnings["label_conflicts"]["examples"] == [{"text": "good film", "lines": [2, 3, 4],
                                                        "labels": [["a", "b"], ["a"]]}]
    assert warnings["small_classes"]["labels"] == {"a": 3, "b": 4}
    kept, dropped = dedupe(table.examples)
    assert lines_of(kept) == [5] and (dropped["duplicates"], dropped["conflicting"]) == (1, 3)


def test_long_lists_stop_at_max_listed():
    examples = [Example("same text", None, "a")] * (MAX_LISTED + 5) + [Example("other", None, "b")]
    duplicates = by_kind(table_warnings(examples))["duplicate_texts"]
    assert duplicates["count"] == MAX_LISTED + 4 and duplicates["lines"] == [None] * MAX_LISTED
    assert "lines" not in duplicates["message"]  # rows not read from a file have no lines to name


def test_dedupe_keeps_the_first_row_of_each_text_and_drops_conflicting_texts(tmp_path):
    table = read_table(write(tmp_path, FILMS_TSV))
    kept, dropped = dedupe(table.examples)
    assert lines_of(kept) == [2, 3, 6]
    assert (dropped["kind"], dropped["count"], dropped["duplicates"], dropped["conflicting"]) == \
        ("deduplicated", 5, 3, 2)
    assert dropped["lines"] == [4, 5, 8, 9, 10]
    assert "dropped 5 of 8 training rows (lines 4, 5, 8, 9, 10)" in dropped["message"]
    assert dedupe(kept) == (kept, None)


def test_training_rows_with_an_eval_file_report_its_checks_and_the_overlap(tmp_path):
    table = read_table(write(tmp_path, FILMS_TSV))
    evaluation = read_table(write(tmp_path, "label\ttext\nneg\tA DULL film\npos\ta new film\npos\tdull?\n",
                                  "dev.tsv")).examples
    rows = training_rows(table.examples, evaluation, None, TrainConfig(dedupe=True))
    assert lines_of(rows.train) == [2, 3, 6] and rows.eval == evaluation
    kinds = [(warning["file"], warning["kind"]) for warning in rows.warnings]
    assert kinds == [("train", "small_classes"), ("train", "short_texts"), ("train", "deduplicated"),
                     ("eval", "small_classes"), ("eval", "train_eval_overlap")]
    shared = rows.warnings[-1]
    # "dull?" was a conflicting text, dropped from training: only "A DULL film" is still there
    assert (shared["count"], shared["eval_rows"], shared["lines"], shared["source"]) == (1, 3, [2], "dataset")
    assert "1 of 3 evaluation rows has a text" in shared["message"] and "evaluation file" in shared["message"]

    kept_all = training_rows(table.examples, evaluation, None, TrainConfig())
    assert len(kept_all.train) == 8
    assert {"duplicate_texts", "near_duplicate_texts", "label_conflicts"} <= {w["kind"] for w in kept_all.warnings}
    assert [w["count"] for w in kept_all.warnings if w["kind"] == "train_eval_overlap"] == [2]


def test_dedupe_runs_before_the_held_out_split(tmp_path):
    rows = "".join(f"{label}\t{label} film {i}\n{label}\t{label.upper()}  FILM {i}\n"
                   for i in range(20) for label in ("pos", "neg"))  # 40 texts, each twice
    examples = read_table(write(tmp_path, "label\ttext\n" + rows)).examples

    plain = training_rows(examples, None, 0.25, TrainConfig(seed=3))
    assert len(plain.train) + len(plain.eval) == 80
    train_texts = {" ".join(e.text.lower().split()) for e in plain.train}
    repeated = sum(" ".join(e.text.lower().split()) in train_texts for e in plain.eval)
    overlap = by_kind(plain.warnings)["train_eval_overlap"]
    assert repeated > 0 and (overlap["count"], overlap["eval_rows"], overlap["source"]) == (repeated, 20, "held_out")
    assert overlap["file"] == "train" and "dedupe: true" in overlap["message"]

    deduped = training_rows(examples, None, 0.25, TrainConfig(seed=3, dedupe=True))
    assert (len(deduped.train), len(deduped.eval)) == (30, 10)
    assert {e.text for e in deduped.train + deduped.eval} == {e.text for e in examples[::2]}  # the first of each
    assert "train_eval_overlap" not in by_kind(deduped.warnings)
    assert by_kind(deduped.warnings)["deduplicated"]["count"] == 40


def test_training_rows_without_eval_rows_is_the_cli_without_eval(tmp_path):
    examples = read_table(write(tmp_path, FILMS_TSV)).examples
    rows = training_rows(examples, None, None, TrainConfig())
    assert rows.eval is None and rows.train == examples
    assert all(warning["file"] == "train" for warning in rows.warnings)
