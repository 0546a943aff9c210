"""Labeled text datasets: reading TSV/CSV files, stratified splits, length-grouped batch order.

File rules (../shared/CONTRACT.md): the header is line 1; UTF-8 with an optional BOM; LF or CRLF
line ends; TSV has no quoting (a `"` is an ordinary character); CSV (by a ".csv" suffix) follows
RFC 4180 via the csv module. Line numbers in errors are file line numbers. Files are read
line by line, never whole.

A single-label file gives `Example`s, each label verbatim. Given a label delimiter, a file is multi-label: each label
cell is split on it and its parts stripped, empty parts dropped, and it gives `MultiLabelExample`s; a row whose cell
yields no label is an error unless no-label rows are allowed.
"""
from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_core.config import MULTI_LABEL, SINGLE_LABEL, ProblemType

LABEL_COLUMNS = ("label", "category", "class")
TEXT_COLUMNS = ("text", "sentence", "content", "text_a", "sentence1")
TEXT_PAIR_COLUMNS = ("text_b", "sentence2")
MAX_REPORTED_ERRORS = 5  # row errors gathered into one message before giving up


class DataError(ValueError):
    """A dataset a person must fix; str(e) is one line, `line` the first bad file line (or None)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass
class Example:
    """A row of a single-label table: one label, exactly as written."""

    text: str
    text_pair: str | None
    label: str
    line: int | None = field(default=None, compare=False)  # its file line (the header is line 1), when read

    @property
    def labels(self) -> tuple[str, ...]:
        """The row's labels the way a multi-label row holds them, for code that serves both kinds."""
        return (self.label,)


@dataclass
class MultiLabelExample:
    """A row of a multi-label table: its distinct labels in the order its cell lists them; () when it has none."""

    text: str
    text_pair: str | None
    labels: tuple[str, ...]
    line: int | None = field(default=None, compare=False)  # its file line (the header is line 1), when read


AnyExample = Example | MultiLabelExample
KIND_NAMES = {SINGLE_LABEL: "single-label", MULTI_LABEL: "multi-label"}


@dataclass
class Table:
    examples: list[Example] | list[MultiLabelExample]
    label_column: str
    text_column: str
    text_pair_column: str | None
    label_delimiter: str | None = None  # set: a multi-label table, its label cells split on it
    allow_no_label: bool = False  # multi-label: a row may have no label

    @property
    def labels(self) -> dict[str, int]:
        """label -> number of rows that have it, in first-seen order."""
        return dict(Counter(label for example in self.examples for label in example.labels))


def problem_type_of(examples: Sequence[AnyExample]) -> ProblemType:
    """MULTI_LABEL for multi-label examples, else SINGLE_LABEL (a table holds one kind only)."""
    return MULTI_LABEL if examples and isinstance(examples[0], MultiLabelExample) else SINGLE_LABEL


def check_problem_type(examples: Sequence[AnyExample], expected: ProblemType, what: str, other: str) -> None:
    """DataError saying which is which when the examples (`what`) are not of the `expected` kind (`other`'s)."""
    found = problem_type_of(examples)
    if found != expected:
        raise DataError(f"{what} is {KIND_NAMES[found]} but {other} is {KIND_NAMES[expected]} (a label delimiter "
                        "makes data multi-label)")


class _RowErrors:
    """Collects per-line problems so one message can name several lines."""

    def __init__(self):
        self.messages: list[str] = []
        self.first_line: int | None = None

    def add(self, line: int, reason: str) -> None:
        if self.first_line is None:
            self.first_line = line
        self.messages.append(f"line {line}: {reason}")
        if len(self.messages) >= MAX_REPORTED_ERRORS:
            self.raise_if_any(more=True)

    def raise_if_any(self, more: bool = False) -> None:
        if self.messages:
            message = "; ".join(self.messages) + ("; ..." if more else "")
            raise DataError(message, line=self.first_line)


def _decoded_lines(binary_file, errors: _RowErrors) -> Iterator[str]:
    """Yields each physical line decoded (line end kept), reporting NUL bytes and bad UTF-8 by line."""
    for line_number, raw in enumerate(binary_file, start=1):
        if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if b"\x00" in raw:
            errors.add(line_number, "contains a NUL byte")
            raw = raw.replace(b"\x00", b"")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            errors.add(line_number, f"not valid UTF-8 (byte {e.start + 1} of the line)")
            yield raw.decode("utf-8", errors="replace")


def _tsv_rows(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\n").removesuffix("\r")
        if line:
            yield line_number, line.split("\t")


def _csv_rows(lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(lines, strict=True)
    record_start = 1
    try:
        for fields in reader:
            if fields:
                yield record_start, fields
            record_start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"line {record_start}: malformed CSV ({e})", line=record_start) from None


def _find_column(header: list[str], requested: str | None, candidates: Sequence[str], role: str) -> int | None:
    if requested is not None:
        if requested not in header:
            raise DataError(f"{role} column {requested!r} not found; the header has: {', '.join(header)}", line=1)
        return header.index(requested)
    for name in candidates:
        if name in header:
            return header.index(name)
    return None


def read_table(
    path: str | Path,
    label_column: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_delimiter: str | None = None,
    allow_no_label: bool = False,
) -> Table:
    """Reads a labeled TSV (or CSV by ".csv" suffix) file; raises DataError naming the line and reason.
    label_delimiter: a multi-label file (see the module doc); allow_no_label: a multi-label row may have no label."""
    if label_delimiter == "":
        raise DataError("the label delimiter is empty")
    if allow_no_label and label_delimiter is None:
        raise DataError("allowing rows without a label needs a label delimiter (multi-label data)")
    path = Path(path)
    errors = _RowErrors()
    try:
        binary_file = path.open("rb")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    with binary_file:
        lines = _decoded_lines(binary_file, errors)
        rows = _csv_rows(lines) if path.suffix.lower() == ".csv" else _tsv_rows(lines)
        first = next(rows, None)
        errors.raise_if_any()
        if first is None:
            raise DataError("the file is empty: expected a header row and data rows")
        header = [name.strip() for name in first[1]]
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise DataError(f"line 1: duplicate column name(s) {', '.join(duplicated)}", line=1)
        label_index = _find_column(header, label_column, LABEL_COLUMNS, "label")
        text_index = _find_column(header, text_column, TEXT_COLUMNS, "text")
        pair_index = _find_column(header, text_pair_column, TEXT_PAIR_COLUMNS, "text pair")
        missing = [
            f"{role} (one of {', '.join(names)})"
            for role, index, names in (("label", label_index, LABEL_COLUMNS), ("text", text_index, TEXT_COLUMNS))
            if index is None
        ]
        if missing:
            raise DataError(f"missing column: {' and '.join(missing)}; the header has: {', '.join(header)}", line=1)
        examples = _read_examples(rows, len(header), label_index, text_index, pair_index, errors,
                                  label_delimiter, allow_no_label)
    errors.raise_if_any()
    if not examples:
        raise DataError("the file has a header but no data rows")
    distinct = {label for example in examples for label in example.labels}
    if len(distinct) < 2:
        raise DataError(f"need at least 2 distinct labels, found only {', '.join(map(repr, distinct)) or 'none'}")
    return Table(
        examples=examples,
        label_column=header[label_index],
        text_column=header[text_index],
        text_pair_column=None if pair_index is None else header[pair_index],
        label_delimiter=label_delimiter,
        allow_no_label=allow_no_label,
    )


def _labeled_example(text: str, pair: str | None, cell: str, label_delimiter: str | None,
                     allow_no_label: bool, line: int) -> AnyExample | None:
    """The row's example, or None when its label cell gives it no label and it needs one."""
    if label_delimiter is None:
        return Example(text, pair, cell, line) if cell else None
    labels = tuple(dict.fromkeys(part.strip() for part in cell.split(label_delimiter) if part.strip()))
    return MultiLabelExample(text, pair, labels, line) if labels or allow_no_label else None


def _read_examples(rows, n_columns, label_index, text_index, pair_index, errors: _RowErrors,
                   label_delimiter: str | None, allow_no_label: bool) -> list[AnyExample]:
    examples = []
    for line_number, fields in rows:
        if len(fields) != n_columns:
            errors.add(line_number, f"expected {n_columns} fields, got {len(fields)}")
            continue
        label, text = fields[label_index], fields[text_index]
        pair = None if pair_index is None else fields[pair_index]
        example = _labeled_example(text, pair, label, label_delimiter, allow_no_label, line_number)
        if example is None:
            errors.add(line_number, "empty label" if not label.strip() else
                       f"no label in {label!r} split on {label_delimiter!r}")
        elif not text.strip():
            errors.add(line_number, "empty text")
        elif pair is not None and not pair.strip():
            errors.add(line_number, "empty text pair")
        else:
            examples.append(example)
    return examples


def stratified_split(examples: Sequence[AnyExample], fraction: float,
                     seed: int) -> tuple[list[AnyExample], list[AnyExample]]:
    """Holds out `fraction` of each stratum's rows (at least one, never all); keeps file order in both parts.

    A single-label row's stratum is its label. A multi-label row's is its rarest label (fewest rows, ties by
    name; rows without a label are a stratum of their own): exact stratification by label sets would leave most
    strata a row or two, while this gives each rare label held-out rows first and the common labels follow along
    in the rows they share. A stratum of one row stays in training."""
    if not 0 < fraction < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    counts = Counter(label for example in examples for label in example.labels)
    too_small = [label for label, count in counts.items() if count < 2]
    if too_small:
        raise DataError(
            "cannot hold out an evaluation split: these labels have fewer than 2 rows: " + ", ".join(too_small)
        )
    by_stratum: dict[str | None, list[int]] = {}
    for index, example in enumerate(examples):
        rarest = min(example.labels, key=lambda label: (counts[label], label), default=None)
        by_stratum.setdefault(rarest, []).append(index)
    rng = random.Random(seed)
    held_out: set[int] = set()
    for indices in by_stratum.values():
        n_held = min(max(1, round(len(indices) * fraction)), len(indices) - 1)
        held_out.update(rng.sample(indices, n_held))
    train = [example for index, example in enumerate(examples) if index not in held_out]
    return train, [example for index, example in enumerate(examples) if index in held_out]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, generator: random.Random, mega_batch: int = 50
) -> list[list[int]]:
    """One epoch's batches of example indices: shuffle, sort each mega-batch of `mega_batch` batches by
    length (longest first) so that a batch pads little, then shuffle the order of the batches."""
    order = list(range(len(lengths)))
    generator.shuffle(order)
    chunk = batch_size * mega_batch
    batches = []
    for start in range(0, len(order), chunk):
        group = sorted(order[start : start + chunk], key=lambda i: lengths[i], reverse=True)
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    generator.shuffle(batches)
    return batches
