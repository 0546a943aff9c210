"""Data checks: what in a labeled table can mislead training or evaluation, said so that a person can act on it,
and the `dedupe` step that removes the worst of it before a run.

Pure functions of examples (model_core.data), no service imports. The upload path stores `table_warnings` with a
dataset; a run (the worker's train_table, the CLI's train) takes its rows from `training_rows`, which applies
dedupe before the held-out split and reports what dedupe dropped and how many evaluation rows repeat a training
text. None of them refuses data: they warn.

A warning is a JSON-ready dict {"kind", "message", ...fields}: the message is one sentence saying what is wrong and
what to do; the fields give the same facts to a program. "count" is how many rows (labels, texts) the warning is
about, "lines" the file lines (the header is line 1) of the first MAX_LISTED of those rows, "examples" up to
MAX_LISTED groups of rows as {"text", "lines"} (+ "text_pair" for pairs). The kinds:

  duplicate_texts       rows whose text (and text pair) repeats an earlier row's exactly
  near_duplicate_texts  rows whose text repeats an earlier row's once case and whitespace are normalised (`normalize`)
                        but not exactly (with duplicate_texts: every row after the first of its normalised text);
                        each example's "texts" are its distinct spellings
  label_conflicts       normalised texts that have rows with different labels (multi-label: different label sets);
                        "count" texts, "rows" rows, each example's "labels" the distinct labels (or label lists)
  small_classes         labels with fewer than MIN_CLASS_ROWS rows; "labels" {label: rows}, fewest first
  short_texts           rows whose text (or text pair) has fewer than MIN_TEXT_CHARS characters once stripped
  deduplicated          a run with dedupe: the training rows it dropped ("duplicates", "conflicting")
  train_eval_overlap    a run: evaluation rows whose normalised text is also a training row's ("eval_rows",
                        "source": "held_out" or "dataset")

In a run's warnings every warning also says in which "file" ("train" or "eval") its lines are.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from model_core.config import TrainConfig
from model_core.data import AnyExample, Example, stratified_split

MIN_CLASS_ROWS = 10  # fewer rows than this: too few to learn a class from, or to measure it on
MIN_TEXT_CHARS = 3  # a text shorter than this once stripped ("ok", "?", "a") says little about its label
MAX_LISTED = 10  # lines and example groups a warning lists
DEDUPE_RESOLVES = frozenset({"duplicate_texts", "near_duplicate_texts", "label_conflicts"})  # in the training rows

TextKey = tuple[str, str | None]  # (text, text pair)


def normalize(text: str) -> str:
    """Case-folded, runs of whitespace as one space, stripped: "A  fine\\tFilm " -> "a fine film"."""
    return " ".join(text.split()).casefold()


def exact_key(example: AnyExample) -> TextKey:
    return example.text, example.text_pair


def text_key(example: AnyExample) -> TextKey:
    """What makes two rows the same text: their normalised text and text pair."""
    return normalize(example.text), None if example.text_pair is None else normalize(example.text_pair)


def labelling(example: AnyExample) -> str | tuple[str, ...]:
    """A row's label, or a multi-label row's label set (sorted: the order of a label cell does not matter)."""
    return example.label if isinstance(example, Example) else tuple(sorted(example.labels))


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _lines(rows: Sequence[AnyExample]) -> list[int | None]:
    return [row.line for row in rows[:MAX_LISTED]]


def _where(rows: Sequence[AnyExample], file: str = "") -> str:
    """ " (lines 4, 9 and 3 more)", naming the first MAX_LISTED rows' file lines; "" for rows not read from a file."""
    lines = [line for line in _lines(rows) if line is not None]
    if not lines:
        return ""
    more = f" and {len(rows) - len(lines)} more" if len(rows) > len(lines) else ""
    listed = f"line {lines[0]}" if len(rows) == 1 else f"lines {', '.join(map(str, lines))}{more}"
    return f" ({listed}{file})"


def _warning(kind: str, message: str, **fields) -> dict:
    return {"kind": kind, "message": message, **fields}


def _example(rows: Sequence[AnyExample], **fields) -> dict:
    """A group of rows as a warning lists it: the first row's text (and pair), the group's first lines."""
    pair = {} if rows[0].text_pair is None else {"text_pair": rows[0].text_pair}
    return {"text": rows[0].text, **pair, "lines": _lines(rows), **fields}


def _listed_labels(rows: Sequence[AnyExample]) -> list:
    """The distinct labellings of the rows in first-seen order, a multi-label one as a list."""
    distinct = dict.fromkeys(labelling(row) for row in rows)
    return [list(value) if isinstance(value, tuple) else value for value in distinct]


# --- the checks of one table ---------------------------------------------------------------------------------------

class _TextIndex:
    """One pass over a table's rows: each row's normalised text; the rows of each normalised text that more than one
    row has (in file order; such texts in first-seen order); the rows that repeat an earlier row's text exactly, and
    those that repeat it only up to case and whitespace (in file order). Lists are made for repeated texts only: a
    list per row would cost more than the rest of the pass."""

    def __init__(self, examples: Sequence[AnyExample]):
        self.examples = examples
        self.keys: list[TextKey] = []  # each row's text_key
        self.first: dict[TextKey, int] = {}  # normalised text -> the position of its first row
        repeated: dict[TextKey, list[AnyExample]] = {}
        exact_seen: set[TextKey] = set()  # the exact texts of the rows in `repeated`
        self.exact_repeats: list[AnyExample] = []
        self.near_repeats: list[AnyExample] = []
        for position, example in enumerate(examples):
            key = text_key(example)
            self.keys.append(key)
            first = self.first.setdefault(key, position)
            if first == position:
                continue
            if key not in repeated:
                repeated[key] = [examples[first]]
                exact_seen.add(exact_key(examples[first]))
            repeated[key].append(example)
            exact = exact_key(example)
            (self.exact_repeats if exact in exact_seen else self.near_repeats).append(example)
            exact_seen.add(exact)
        self.repeated = dict(sorted(repeated.items(), key=lambda item: self.first[item[0]]))

    def conflicting(self) -> dict[TextKey, list[AnyExample]]:
        """normalised text -> its rows, for the texts whose rows have different labels."""
        return {key: rows for key, rows in self.repeated.items() if len({labelling(row) for row in rows}) > 1}

    def rows_of(self, keys: Collection[TextKey]) -> list[AnyExample]:
        """The rows of these normalised texts, in file order."""
        return [example for example, key in zip(self.examples, self.keys, strict=True) if key in keys]


def table_warnings(examples: Sequence[AnyExample]) -> list[dict]:
    """Every check of the module doc on one table's rows, in that order; [] when nothing is amiss."""
    index = _TextIndex(examples)
    found = (_duplicates(index), _near_duplicates(index), _conflicts(index), _small_classes(examples),
             _short_texts(examples))
    return [warning for warning in found if warning is not None]


def _duplicates(index: _TextIndex) -> dict | None:
    repeats = index.exact_repeats
    if not repeats:
        return None
    by_exact = [_by_exact(rows) for rows in index.repeated.values()]
    groups = [same for exact_groups in by_exact for same in exact_groups if len(same) > 1]
    verb = "repeats" if len(repeats) == 1 else "repeat"
    return _warning(
        "duplicate_texts",
        f"{_plural(len(repeats), 'row', 'rows')} {verb} an earlier row's text exactly{_where(repeats)}; remove "
        "them, or train with dedupe: true, which keeps the first of each.",
        count=len(repeats), lines=_lines(repeats), examples=[_example(rows) for rows in groups[:MAX_LISTED]])


def _near_duplicates(index: _TextIndex) -> dict | None:
    repeats = index.near_repeats
    if not repeats:
        return None
    groups = [rows for rows in index.repeated.values() if len(_by_exact(rows)) > 1]
    verb = "repeats" if len(repeats) == 1 else "repeat"
    return _warning(
        "near_duplicate_texts",
        f"{_plural(len(repeats), 'row', 'rows')} {verb} an earlier row's text up to case and whitespace"
        f"{_where(repeats)}; remove them, or train with dedupe: true, which keeps the first of each.",
        count=len(repeats), lines=_lines(repeats),
        examples=[{"texts": list(dict.fromkeys(row.text for row in rows)), "lines": _lines(rows)}
                  for rows in groups[:MAX_LISTED]])


def _by_exact(rows: Sequence[AnyExample]) -> list[list[AnyExample]]:
    """The rows grouped by their exact text, in first-seen order."""
    groups: dict[TextKey, list[AnyExample]] = {}
    for row in rows:
        groups.setdefault(exact_key(row), []).append(row)
    return list(groups.values())


def _conflicts(index: _TextIndex) -> dict | None:
    conflicting = index.conflicting()
    if not conflicting:
        return None
    rows = index.rows_of(conflicting)
    groups = list(conflicting.values())
    return _warning(
        "label_conflicts",
        f"{_plural(len(groups), 'text has', 'texts have')} rows with different labels{_where(rows)}; correct the "
        "labels, or train with dedupe: true, which drops every row of such a text.",
        count=len(groups), rows=len(rows), lines=_lines(rows),
        examples=[_example(group, labels=_listed_labels(group)) for group in groups[:MAX_LISTED]])


def _small_classes(examples: Sequence[AnyExample]) -> dict | None:
    counts = Counter(label for example in examples for label in example.labels)
    small = dict(sorted(((label, n) for label, n in counts.items() if n < MIN_CLASS_ROWS), key=lambda item: item[1]))
    if not small:
        return None
    listed = ", ".join(f"{label!r}: {n}" for label, n in small.items())
    return _warning(
        "small_classes",
        f"{_plural(len(small), 'label has', 'labels have')} fewer than {MIN_CLASS_ROWS} rows ({listed}); add rows "
        "or merge labels: a model learns little from so few, and their evaluation figures rest on a row or two.",
        count=len(small), labels=small, min_rows=MIN_CLASS_ROWS)


def _is_short(example: AnyExample) -> bool:
    texts = (example.text,) if example.text_pair is None else (example.text, example.text_pair)
    return any(len(text.strip()) < MIN_TEXT_CHARS for text in texts)


def _short_texts(examples: Sequence[AnyExample]) -> dict | None:
    short = [example for example in examples if _is_short(example)]
    if not short:
        return None
    verb = "has" if len(short) == 1 else "have"
    return _warning(
        "short_texts",
        f"{_plural(len(short), 'row', 'rows')} {verb} a text shorter than {MIN_TEXT_CHARS} characters"
        f"{_where(short)}; check that each is a real example: so short a text says little about its label.",
        count=len(short), lines=_lines(short), min_chars=MIN_TEXT_CHARS)


# --- a run's rows ----------------------------------------------------------------------------------------------------

def dedupe(examples: Sequence[AnyExample]) -> tuple[list[AnyExample], dict | None]:
    """The rows less every row of a normalised text that has different labels, and less every later row of a
    normalised text (the first is kept), in file order; and the `deduplicated` warning (None: nothing dropped)."""
    index = _TextIndex(examples)
    conflicting = index.conflicting()
    kept, dropped, duplicates, conflict_rows = [], [], [], []
    for position, (example, key) in enumerate(zip(examples, index.keys, strict=True)):
        if key in conflicting or index.first[key] != position:
            dropped.append(example)
            (conflict_rows if key in conflicting else duplicates).append(example)
        else:
            kept.append(example)
    if not dropped:
        return kept, None
    return kept, _warning(
        "deduplicated",
        f"dedupe dropped {len(dropped)} of {len(examples)} training rows{_where(dropped)}: "
        f"{_plural(len(duplicates), 'repeat', 'repeats')} of an earlier row's text and "
        f"{_plural(len(conflict_rows), 'row', 'rows')} of {_plural(len(conflicting), 'text', 'texts')} with "
        "different labels.",
        count=len(dropped), duplicates=len(duplicates), conflicting=len(conflict_rows), lines=_lines(dropped))


def overlap(train: Sequence[AnyExample], eval: Sequence[AnyExample], source: str) -> dict | None:
    """The `train_eval_overlap` warning: the evaluation rows whose normalised text is also a training row's (None:
    none is). `source`: "held_out" (rows held out of the training file) or "dataset" (an evaluation file's rows)."""
    seen = {text_key(example) for example in train}
    shared = [example for example in eval if text_key(example) in seen]
    if not shared:
        return None
    held_out = source == "held_out"
    remedy = ("train with dedupe: true, which drops repeated texts before the held-out split" if held_out
              else "remove them from the evaluation or the training file")
    where = _where(shared, " of the training file" if held_out else " of the evaluation file")
    verb = "has" if len(shared) == 1 else "have"
    return _warning(
        "train_eval_overlap",
        f"{len(shared)} of {len(eval)} evaluation rows {verb} a text that is also in the training rows, up to case "
        f"and whitespace{where}; the evaluation overstates how the model does on new text: {remedy}.",
        count=len(shared), eval_rows=len(eval), lines=_lines(shared), source=source)


@dataclass
class TrainingRows:
    """The rows a run trains and evaluates on, and the warnings to show with its results."""

    train: list[AnyExample]
    eval: list[AnyExample] | None
    warnings: list[dict]


def training_rows(examples: Sequence[AnyExample], eval_examples: Sequence[AnyExample] | None,
                  eval_fraction: float | None, cfg: TrainConfig) -> TrainingRows:
    """A run's rows: the training file's `examples`, deduplicated when cfg.dedupe, then, when no `eval_examples`
    are given and an `eval_fraction` is, split into training and held-out rows (stratified, seeded by cfg.seed).

    Its warnings: the training file's checks (with dedupe, those it resolves give way to what it dropped), the
    evaluation file's, and the overlap of the evaluation rows with the training rows; each says its "file"."""
    train = list(examples)
    warnings = [warning for warning in table_warnings(train) if not (cfg.dedupe and warning["kind"] in DEDUPE_RESOLVES)]
    if cfg.dedupe:
        train, dropped = dedupe(train)
        warnings.append(dropped)
    warnings = _in_file("train", warnings)
    if eval_examples is not None:
        warnings += _in_file("eval", [*table_warnings(eval_examples), overlap(train, eval_examples, "dataset")])
    elif eval_fraction is not None:
        train, eval_examples = stratified_split(train, eval_fraction, cfg.seed)
        warnings += _in_file("train", [overlap(train, eval_examples, "held_out")])
    return TrainingRows(train, None if eval_examples is None else list(eval_examples), warnings)


def _in_file(file: str, warnings: list[dict | None]) -> list[dict]:
    """The warnings (None: no warning) with the file their lines are in, "train" or "eval"."""
    return [{**warning, "file": file} for warning in warnings if warning is not None]
