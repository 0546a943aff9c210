import random
from pathlib import Path

import pytest

from model_core.config import MULTI_LABEL
from model_core.data import (
    DataError,
    Example,
    MultiLabelExample,
    check_problem_type,
    length_grouped_batches,
    read_table,
    stratified_split,
)
from testkit.data import SHARED_DATA


def write(tmp_path: Path, content: bytes, name: str = "data.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def error_of(path: Path, **columns) -> DataError:
    with pytest.raises(DataError) as caught:
        read_table(path, **columns)
    assert "\n" not in str(caught.value)
    return caught.value


def test_sst2_train_crlf_reads_every_row():
    table = read_table(SHARED_DATA / "sst2" / "train.tsv")
    assert len(table.examples) == 67_349
    assert (table.label_column, table.text_column, table.text_pair_column) == ("label", "sentence", None)
    assert set(table.labels) == {"0", "1"} and sum(table.labels.values()) == 67_349
    assert not any(e.text.endswith("\r") for e in table.examples[:100])


def test_banking77_csv_defaults_to_text_and_category():
    table = read_table(SHARED_DATA / "banking77" / "train.csv")
    assert (table.label_column, table.text_column) == ("category", "text")
    assert len(table.labels) == 77
    assert table.examples[0] == Example("I am still waiting on my card?", None, "card_arrival")


def test_tsv_quote_is_ordinary_and_labels_are_verbatim(tmp_path):
    path = write(tmp_path, '\ufefflabel\ttext\r\n 01\tsays "hi\r\nB\tok "quoted" text\n'.encode())
    table = read_table(path)
    assert [(e.label, e.text) for e in table.examples] == [(" 01", 'says "hi'), ("B", 'ok "quoted" text')]
    assert table.labels == {" 01": 1, "B": 1}


def test_csv_quoting_with_embedded_newline_and_pair_column(tmp_path):
    content = 'sentence1,sentence2,label\n"a, ""b""\nc",d,x\ne,f,y\n'
    table = read_table(write(tmp_path, content.encode(), "pairs.csv"))
    assert table.text_pair_column == "sentence2"
    assert table.examples[0] == Example('a, "b"\nc', "d", "x")
    assert error_of(write(tmp_path, b'text,label\n"a,b\nc,d\n', "bad.csv")).line == 2


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"label\ttext\n1\ta\n2\tb\tc\n", 3, "expected 2 fields, got 3"),
        (b"label\ttext\n1\ta\n2\t  \n", 3, "empty text"),
        (b"label\ttext\n1\ta\n2\tb\x00c\n", 3, "NUL"),
        (b"label\ttext\n1\ta\n2\tb\xff\n", 3, "UTF-8"),
        (b"label\ttext\n\tno label\n2\tb\n", 2, "empty label"),
    ],
)
def test_bad_rows_name_the_file_line(tmp_path, content, line, fragment):
    error = error_of(write(tmp_path, content))
    assert error.line == line
    assert str(error).startswith(f"line {line}:") and fragment in str(error)


def test_several_bad_rows_are_named_in_one_message(tmp_path):
    error = error_of(write(tmp_path, b"label\ttext\n1\ta\tx\n2\t\n3\tok\n4\tb\tc\n"))
    assert str(error) == "line 2: expected 2 fields, got 3; line 3: empty text; line 5: expected 2 fields, got 3"


@pytest.mark.parametrize(
    ("content", "columns", "fragment"),
    [
        (b"", {}, "empty"),
        (b"label\ttext\r\n", {}, "no data rows"),
        (b"label\ttext\n1\ta\n1\tb\n", {}, "2 distinct labels"),
        (b"tag\ttext\n1\ta\n2\tb\n", {}, "label (one of label, category, class); the header has: tag, text"),
        (b"label\tbody\n1\ta\n2\tb\n", {"text_column": "review"}, "text column 'review' not found"),
        (b"label\ttext\tlabel\n1\ta\t1\n", {}, "duplicate column"),
    ],
)
def test_file_level_errors_say_what_is_wrong(tmp_path, content, columns, fragment):
    assert fragment in str(error_of(write(tmp_path, content), **columns))


def test_explicit_columns_override_defaults(tmp_path):
    path = write(tmp_path, b"label\ttext\tgold\tbody\n1\ta\tx\tA\n2\tb\ty\tB\n")
    table = read_table(path, label_column="gold", text_column="body")
    assert [(e.label, e.text) for e in table.examples] == [("x", "A"), ("y", "B")]


def test_missing_file_is_a_data_error(tmp_path):
    assert "cannot read" in str(error_of(tmp_path / "nope.tsv"))


def test_stratified_split_keeps_every_label_on_both_sides():
    examples = [Example(f"t{i}", None, label) for i, label in enumerate("a" * 10 + "b" * 3 + "c" * 2)]
    train, held = stratified_split(examples, 0.2, seed=1)
    assert sorted(e.label for e in held) == ["a", "a", "b", "c"]
    assert len(train) + len(held) == 15 and {e.label for e in train} == {"a", "b", "c"}
    assert stratified_split(examples, 0.2, seed=1) == (train, held)
    assert [e.text for e in train] == sorted((e.text for e in train), key=lambda t: int(t[1:]))


def test_stratified_split_names_labels_too_small_to_split():
    examples = [Example("x", None, label) for label in ["a", "a", "b", "c"]]
    with pytest.raises(DataError, match="fewer than 2 rows: b, c"):
        stratified_split(examples, 0.5, seed=0)


def test_label_delimiter_splits_strips_and_counts_each_label(tmp_path):
    path = write(tmp_path, b"label\ttext\nb, a\tfirst\n a ,a,\tsecond\nc\tthird\n")
    table = read_table(path, label_delimiter=",")
    assert table.examples == [MultiLabelExample("first", None, ("b", "a")), MultiLabelExample("second", None, ("a",)),
                              MultiLabelExample("third", None, ("c",))]
    assert table.labels == {"b": 1, "a": 2, "c": 1}  # a row counts once for each of its labels
    assert (table.label_delimiter, table.allow_no_label) == (",", False)
    csv_table = read_table(write(tmp_path, b'text,label\n"x, y",a|b\nz,b\n', "pipes.csv"), label_delimiter="|")
    assert [e.labels for e in csv_table.examples] == [("a", "b"), ("b",)] and csv_table.labels == {"a": 1, "b": 2}
    assert read_table(path).labels == {"b, a": 1, " a ,a,": 1, "c": 1}  # no delimiter: single-label, verbatim


def test_a_row_left_without_a_label_names_its_line_unless_allowed(tmp_path):
    path = write(tmp_path, b"label\ttext\na\tx\n\ty\n , \tz\nb\tw\n")
    error = error_of(path, label_delimiter=",")
    assert str(error) == "line 3: empty label; line 4: no label in ' , ' split on ','" and error.line == 3
    table = read_table(path, label_delimiter=",", allow_no_label=True)
    assert [e.labels for e in table.examples] == [("a",), (), (), ("b",)] and table.labels == {"a": 1, "b": 1}
    assert table.allow_no_label


@pytest.mark.parametrize(
    ("content", "options", "fragment"),
    [
        (b"label\ttext\na\tx\nb\ty\n", {"allow_no_label": True}, "needs a label delimiter"),
        (b"label\ttext\na\tx\nb\ty\n", {"label_delimiter": ""}, "delimiter is empty"),
        (b"label\ttext\na\tx\na,a\ty\n", {"label_delimiter": ","}, "2 distinct labels, found only 'a'"),
        (b"label\ttext\n\tx\n,\ty\n", {"label_delimiter": ",", "allow_no_label": True}, "found only none"),
    ],
)
def test_multi_label_options_and_too_few_labels_are_refused(tmp_path, content, options, fragment):
    assert fragment in str(error_of(write(tmp_path, content), **options))


def test_multi_label_split_stratifies_by_each_rows_rarest_label():
    rows = [("common",)] * 10 + [("common", "rare")] * 4 + [()] * 3 + [("pair", "common"), ("pair",)]
    examples = [MultiLabelExample(f"t{i}", None, labels) for i, labels in enumerate(rows)]
    train, held = stratified_split(examples, 0.25, seed=1)
    held_rows = sorted(e.labels for e in held)
    # strata: common 10 rows -> 2 held, rare 4 -> 1, no label 3 -> 1, pair 2 -> 1
    assert held_rows.count(("common",)) == 2 and held_rows.count(("common", "rare")) == 1
    assert held_rows.count(()) == 1 and len([r for r in held_rows if "pair" in r]) == 1 and len(held) == 5
    assert {label for e in train for label in e.labels} == {"common", "rare", "pair"}
    assert stratified_split(examples, 0.25, seed=1) == (train, held)
    # every label has 2 rows; ties go to the first name: strata x (rows 0, 2) and y (row 1, alone: kept in training)
    pairs = [("x", "y"), ("y", "z"), ("x", "z")]
    triangle = [MultiLabelExample(str(i), None, labels) for i, labels in enumerate(pairs)]
    train, held = stratified_split(triangle, 0.5, seed=0)
    assert len(held) == 1 and held[0].text in ("0", "2") and triangle[1] in train
    with pytest.raises(DataError, match="fewer than 2 rows: once"):
        stratified_split(examples + [MultiLabelExample("t", None, ("once", "common"))], 0.25, seed=1)


def test_examples_of_the_other_kind_are_named():
    single, multi = [Example("x", None, "a")], [MultiLabelExample("x", None, ("a",))]
    check_problem_type(multi, MULTI_LABEL, "the evaluation set", "the training set")
    with pytest.raises(DataError, match="the evaluation set is single-label but the training set is multi-label"):
        check_problem_type(single, MULTI_LABEL, "the evaluation set", "the training set")


def test_length_grouped_batches_cover_each_index_once_and_group_lengths():
    lengths = [random.Random(i).randint(1, 100) for i in range(1000)]
    batches = length_grouped_batches(lengths, 8, random.Random(0), mega_batch=50)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert len(batches) == 125
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches of 8 would spread ~75
    assert batches == length_grouped_batches(lengths, 8, random.Random(0), mega_batch=50)
