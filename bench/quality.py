"""Quality benchmark: what the service's defaults reach, side by side with transformers' usual fine-tuning recipe on
the same rows with the same evaluation (accuracy, macro-F1, training seconds; CPU, fp32, the same MiniLM weights),
and for the single-label cases the expected calibration error (ECE) of the scores each side serves: the defaults'
before and after the temperature scaling a job fits on its held-out rows, the recipe's raw softmax.

- The service's defaults: exactly what a job with only a dataset id trains (`JobConfig()`'s base model, eval fraction
  and hyperparameters, through the worker's `train_table`: a stratified eval_fraction of the rows held out for
  evaluation and best-model selection), then model_core's `evaluate` of the saved model. Whatever the defaults are
  when the bench runs is what it measures.
- transformers' usual recipe (RECIPE): BertForSequenceClassification from the same checkpoint, AdamW (weight decay
  0.01, not on biases and LayerNorm), 10% linear warmup then linear decay, 3 epochs, lr 5e-5, batch 32, max_len 128,
  random order, dynamic padding; trained on all of the case's rows (it holds nothing out).

Full run (goals in the notes): SST-2 300 rows (dev accuracy >= 0.78); SST-2 720 rows, 3 seeded subsets (dev accuracy
mean >= 0.83, min >= 0.80); Banking77 full train (test accuracy >= 0.93, training <= 12 min); GoEmotions full train,
multi-label (test macro-F1 >= 0.46); the defaults ahead of the recipe on every case. `--quick` (meant to take under
6 minutes on an idle 2-core machine): SST-2 300 rows; Banking77 ~1,000 stratified train rows evaluated on 1,000 other
train rows; GoEmotions 1,000 train rows evaluated on 1,000 dev rows: a quick run reads no test split.
`python -m bench.quality --smoke`: the full cases' code on tiny row counts, to check that they run.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from app.schemas import JobConfig
from bench.model_core import TransformersTrainer, multi_hot
from bench.run import print_table
from model_core.base_models import resolve_base_model
from model_core.checkpoint import load_model
from model_core.config import TrainConfig
from model_core.data import Example, Table, read_table, stratified_split
from model_core.evaluate import classification_metrics, evaluate, label_ids
from model_core.report import ECE_BINS, evaluate_model_dir, reliability
from model_core.train import TrainResult
from testkit.data import SHARED_DATA
from worker.training import train_table

SECTION = "quality"
RECIPE = TrainConfig(epochs=3, batch_size=32, learning_rate=5e-5, warmup_ratio=0.1, weight_decay=0.01, max_len=128,
                     grad_clip=1.0, seed=42)
RECIPE_NOTE = ("transformers BertForSequenceClassification (CLS pooler), AdamW wd 0.01, 10% warmup, 3 epochs, lr 5e-5, "
               "batch 32, max_len 128, seed 42")
SUBSET_SEED = 0  # Banking77 and GoEmotions subsets and capped evaluation sets
GOEMOTIONS_DELIMITER = ","  # the files' label-id separator
PREDICT_BATCH = 64


def log(message: str) -> None:
    print(f"[bench {SECTION} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    sst2: tuple[tuple[int, tuple[int, ...]], ...]  # (training rows, subset seeds) of each SST-2 case; dev evaluates
    banking77_rows: int | None  # a stratified subset of train.csv; None: all of it
    goemotions_rows: int | None  # a seeded subset of train.tsv; None: all of it
    final: bool  # evaluate on the test splits (else Banking77 on other train rows, GoEmotions on dev)
    eval_rows: int | None  # a seeded subset of each evaluation set; None: all of it


FULL = Sizes(sst2=((300, (0,)), (720, (1, 2, 3))), banking77_rows=None, goemotions_rows=None, final=True,
             eval_rows=None)
QUICK = Sizes(sst2=((300, (0,)),), banking77_rows=1000, goemotions_rows=1000, final=False, eval_rows=1000)
SMOKE = Sizes(sst2=((40, (0,)), (40, (1, 2, 3))), banking77_rows=800, goemotions_rows=1000, final=True, eval_rows=100)


@dataclass
class Case:
    """One training set and its evaluation set. Multi-label (`label_delimiter`): each example's label joins its
    labels, and `files` are the (training, evaluation) files as a user uploads them."""

    train: list[Example]
    evaluation: list[Example]
    labels: list[str]
    label_delimiter: str | None = None
    files: tuple[Path, Path] | None = None


@dataclass
class Group:
    """A benchmark case: one or several seeded training sets, reported as one value or as mean and min."""

    name: str
    cases: list[Case]
    about: str  # the rows, seeds and evaluation set
    headline: str  # "accuracy" or "macro_f1": the goal's metric
    goals: dict[str, str]  # the defaults' goals by row name: "accuracy", "accuracy mean", "training time", ...


@dataclass
class Outcome:
    accuracy: float  # exact match for multi-label
    macro_f1: float
    seconds: float  # training wall time
    ece: float | None = None  # single-label: expected calibration error of the scores served
    ece_unscaled: float | None = None  # the defaults': before temperature scaling (softmax of the raw logits)


# --- the two sides ---------------------------------------------------------------------------------------------------

def service_defaults() -> tuple[JobConfig, TrainConfig]:
    """A job's settings when it gives only a dataset id, and the TrainConfig the worker makes of them."""
    job = JobConfig()
    return job, TrainConfig.model_validate(job.hyperparameters.model_dump())


def train_with_defaults(examples: list[Example], out_dir: Path, cfg: TrainConfig | None = None,
                        device: str = "cpu") -> TrainResult:
    """What a job with only a dataset id trains on these rows (the worker's path); `cfg`: other hyperparameters
    (bench/sweep.py's), the defaults' by default."""
    job, defaults = service_defaults()
    table = Table(list(examples), label_column="label", text_column="text", text_pair_column=None)
    return train_table(table, None, job.eval_fraction, job.base_model, out_dir, cfg or defaults, device=device)


def ours(case: Case, out_dir: Path, cfg: TrainConfig | None = None, device: str = "cpu") -> Outcome:
    if case.label_delimiter is not None:
        return ours_multi_label(case, out_dir, cfg, device)
    started = time.perf_counter()
    result = train_with_defaults(case.train, out_dir, cfg, device)
    seconds = time.perf_counter() - started
    report = evaluate_model_dir(result.model_dir, case.evaluation, train_examples=case.train)
    calibration = report["calibration"]  # the temperature was fitted on the held-out rows, not on these
    return Outcome(report["metrics"]["accuracy"], report["metrics"]["macro_f1"], seconds,
                   ece=calibration["ece_after"], ece_unscaled=calibration["ece_before"])


def ours_multi_label(case: Case, out_dir: Path, cfg: TrainConfig | None = None, device: str = "cpu") -> Outcome:
    """The defaults on the training file as a user uploads it (`label_delimiter`), the saved model scored on the
    evaluation file at its own thresholds (tuned on the held-out rows, never on the evaluation file). model_core's
    macro-F1 averages the labels true or predicted at least once: on the evaluation files here, every label."""
    train_file, evaluation_file = case.files
    job, defaults = service_defaults()
    table = read_table(train_file, label_delimiter=case.label_delimiter)
    started = time.perf_counter()
    result = train_table(table, None, job.eval_fraction, job.base_model, out_dir, cfg or defaults, device=device)
    seconds = time.perf_counter() - started
    loaded = load_model(result.model_dir)
    evaluation = read_table(evaluation_file, label_delimiter=case.label_delimiter).examples
    metrics = evaluate(loaded.model, loaded.tokenizer, evaluation, loaded.labels, loaded.max_len,
                       thresholds=loaded.thresholds)
    return Outcome(metrics["accuracy"], metrics["macro_f1"], seconds)


def theirs(case: Case, base_dir: Path) -> Outcome:
    """RECIPE on all of the case's rows: a new random order each epoch, as a DataLoader with shuffle=True."""
    started = time.perf_counter()
    total_steps = RECIPE.epochs * math.ceil(len(case.train) / RECIPE.batch_size)
    trainer = TransformersTrainer(base_dir, case.train, case.labels, RECIPE, total_steps, case.label_delimiter)
    generator = torch.Generator().manual_seed(RECIPE.seed)
    for _ in range(RECIPE.epochs):
        order = torch.randperm(len(case.train), generator=generator).tolist()
        for start in range(0, len(order), RECIPE.batch_size):
            trainer.step(order[start : start + RECIPE.batch_size])
    seconds = time.perf_counter() - started
    trainer.model.eval()
    probabilities = predict_all(trainer, [e.text for e in case.evaluation], len(case.labels))  # (N, L)
    if case.label_delimiter is None:
        gold = label_ids(case.evaluation, case.labels, "the evaluation set")
        top, predicted = probabilities.max(dim=-1)
        metrics = classification_metrics(gold, predicted, case.labels)
        ece, _ = reliability(top, predicted == gold)
        return Outcome(metrics["accuracy"], metrics["macro_f1"], seconds, ece=ece)
    gold = multi_hot(case.evaluation, case.labels, case.label_delimiter).bool()
    metrics = multi_label_metrics(gold, probabilities >= 0.5)
    return Outcome(metrics["accuracy"], metrics["macro_f1"], seconds)


def predict_all(trainer: TransformersTrainer, texts: list[str], n_labels: int) -> torch.Tensor:
    """(N, n_labels) probabilities in input order, predicted in batches of texts of similar length."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probabilities = torch.empty(len(texts), n_labels)
    for start in range(0, len(order), PREDICT_BATCH):
        index = order[start : start + PREDICT_BATCH]
        probabilities[index] = trainer.predict([texts[i] for i in index])
    return probabilities


def multi_label_metrics(gold: torch.Tensor, predicted: torch.Tensor) -> dict:
    """Exact-match accuracy and macro-F1 over every label of (N, n_labels) booleans; a label neither true nor
    predicted anywhere scores F1 0 (sklearn's zero_division default)."""
    true_positives = (gold & predicted).sum(dim=0)  # (L,)
    errors = (gold ^ predicted).sum(dim=0)  # (L,) false positives + false negatives
    f1 = 2 * true_positives / (2 * true_positives + errors).clamp(min=1)
    return {"accuracy": (gold == predicted).all(dim=1).float().mean().item(), "macro_f1": f1.float().mean().item()}


# --- the cases -------------------------------------------------------------------------------------------------------

def capped(examples: list[Example], rows: int | None) -> list[Example]:
    return examples if rows is None or rows >= len(examples) else random.Random(SUBSET_SEED).sample(examples, rows)


def sst2_groups(sizes: Sizes) -> list[Group]:
    train = read_table(SHARED_DATA / "sst2" / "train.tsv").examples
    dev = capped(read_table(SHARED_DATA / "sst2" / "dev.tsv").examples, sizes.eval_rows)
    goals = {(300, (0,)): {"accuracy": "goal >= 0.78"},
             (720, (1, 2, 3)): {"accuracy mean": "goal >= 0.83", "accuracy min": "goal >= 0.80"}}
    groups = []
    for rows, seeds in sizes.sst2:
        subsets = [random.Random(seed).sample(train, rows) for seed in seeds]
        cases = [Case(subset, dev, sorted({e.label for e in subset})) for subset in subsets]
        name = f"SST-2 {rows} rows" + (f" x{len(seeds)}" if len(seeds) > 1 else "")
        about = f"sst2/train.tsv rows drawn with seed {', '.join(map(str, seeds))}; sst2/dev.tsv ({len(dev)})"
        groups.append(Group(name, cases, about, "accuracy", goals.get((rows, seeds), {})))
    return groups


def banking77_group(sizes: Sizes) -> Group:
    """The goals are the full case's: every train row, evaluated on all of test.csv."""
    train = read_table(SHARED_DATA / "banking77" / "train.csv").examples
    if sizes.banking77_rows is None:
        name, subset, rest, drawn = "Banking77 full train", train, [], ""
    else:  # every intent in the subset, in proportion (the service holds out some of each)
        rest, subset = stratified_split(train, sizes.banking77_rows / len(train), SUBSET_SEED)
        name, drawn = f"Banking77 {len(subset)} rows", f" (stratified, seed {SUBSET_SEED})"
    if sizes.final:
        where, evaluation = "banking77/test.csv", read_table(SHARED_DATA / "banking77" / "test.csv").examples
    else:
        where, evaluation = "other rows of banking77/train.csv", rest
    evaluation = capped(evaluation, sizes.eval_rows)
    about = f"{len(subset)} rows of banking77/train.csv{drawn}; {where} ({len(evaluation)})"
    goals = {"accuracy": "goal >= 0.93", "training time": "goal <= 720 s"} if sizes == FULL else {}
    return Group(name, [Case(subset, evaluation, sorted({e.label for e in subset}))], about, "accuracy", goals)


def with_header(source: Path, target: Path, rows: int | None) -> Path:
    """A GoEmotions file as a user uploads it: a header row added (the files have none), optionally a seeded subset."""
    lines = source.read_text(encoding="utf-8").splitlines()
    if rows is not None and rows < len(lines):
        lines = random.Random(SUBSET_SEED).sample(lines, rows)
    target.write_text("text\tlabel\tcomment_id\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return target


def goemotions_group(sizes: Sizes, work: Path) -> Group:
    """Read as single-label files here (each label is the row's ","-joined ids): the transformers side splits them."""
    data = SHARED_DATA / "goemotions"
    labels = [str(i) for i in range(len((data / "labels.txt").read_text(encoding="utf-8").splitlines()))]
    split = "test" if sizes.final else "dev"
    files = (with_header(data / "train.tsv", work / "goemotions-train.tsv", sizes.goemotions_rows),
             with_header(data / f"{split}.tsv", work / f"goemotions-{split}.tsv", sizes.eval_rows))
    train, evaluation = (read_table(file).examples for file in files)
    name = "GoEmotions " + ("full train" if sizes.goemotions_rows is None else f"{len(train)} rows")
    drawn = "" if sizes.goemotions_rows is None else f" (seed {SUBSET_SEED})"
    about = (f"{len(train)} rows of goemotions/train.tsv{drawn}, {len(labels)} labels, a header row added; "
             f"goemotions/{split}.tsv ({len(evaluation)}); a label is predicted at sigmoid >= 0.5")
    goals = {"macro-F1": "goal >= 0.46"} if sizes == FULL else {}
    return Group(name, [Case(train, evaluation, labels, GOEMOTIONS_DELIMITER, files)], about, "macro_f1", goals)


# --- rows ------------------------------------------------------------------------------------------------------------

DEFAULTS, TRANSFORMERS = "service defaults", "transformers recipe"
METRICS = {"accuracy": ("accuracy", "accuracy"), "macro_f1": ("macro-F1", "macro-F1"),
           "seconds": ("training time", "s"), "ece": ("ECE", "ECE"),
           "ece_unscaled": ("ECE before temperature scaling", "ECE")}  # Outcome field -> (row name, unit)
ECE_NOTE = (f"expected calibration error of the scores served, {ECE_BINS} equal-width bins of the top probability, "
            "on the evaluation set: the defaults' logits divided by the temperature their job fitted on its held-out "
            "rows, the recipe's raw softmax")


def row(metric: str, value: float | None, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "metric": metric, "value": None if value is None else round(value, 4), "unit": unit,
            "note": note}


def joined(*notes: str | None) -> str:
    return "; ".join(note for note in notes if note)


def side_rows(group: Group, side: str, outcomes: list[Outcome], time_note: str) -> list[dict]:
    """Accuracy, macro-F1 and training time of one side: a single run's values, else the mean (and the min of the
    headline metric) with each run's value in the note; the group's goals in the defaults' notes."""
    goals = group.goals if side == DEFAULTS else {}
    notes = {"seconds": time_note, "ece": ECE_NOTE, "ece_unscaled": ECE_NOTE}
    rows = []
    for field, (label, unit) in METRICS.items():
        values = [getattr(outcome, field) for outcome in outcomes]
        if None in values:  # a figure this side or case does not have
            continue
        each = "" if len(values) == 1 else "each run: " + ", ".join(f"{value:.4g}" for value in values)
        stats = {label: values[0]} if len(values) == 1 else {f"{label} mean": statistics.mean(values)}
        if len(values) > 1 and field == group.headline:
            stats[f"{label} min"] = min(values)
        for name, value in stats.items():
            rows.append(row(f"{group.name}: {name}, {side}", value, unit,
                            joined(goals.get(name), each, notes.get(field, ""))))
    return rows


def group_rows(group: Group, base_dir: Path, work: Path) -> list[dict]:
    """Both sides' rows, then how far the defaults are ahead on the headline metric (means over the runs)."""
    job, _ = service_defaults()
    headline, unit = METRICS[group.headline]
    rows = []
    mine = []
    for i, case in enumerate(group.cases):
        log(f"{group.name}, run {i + 1}/{len(group.cases)}: {DEFAULTS}")
        mine.append(ours(case, work / f"{group.name} {i}"))
    rows += side_rows(group, DEFAULTS, mine, f"{job.eval_fraction:.0%} of the rows held out (stratified) for "
                      "best-model selection; includes its evaluations and checkpoints, as in a job")
    recipe = []
    for i, case in enumerate(group.cases):
        log(f"{group.name}, run {i + 1}/{len(group.cases)}: {TRANSFORMERS}")
        recipe.append(theirs(case, base_dir))
    rows += side_rows(group, TRANSFORMERS, recipe, f"{RECIPE_NOTE}; trained on all the rows")
    ahead = (statistics.mean(getattr(outcome, group.headline) for outcome in mine)
             - statistics.mean(getattr(outcome, group.headline) for outcome in recipe))
    rows.append(row(f"{group.name}: defaults - transformers, {headline}", ahead, unit, joined("goal > 0", group.about)))
    return rows


def measure(sizes: Sizes) -> list[dict]:
    job, cfg = service_defaults()
    settings = ", ".join(f"{name} {value}" for name, value in cfg.model_dump().items() if value is not None)
    rows = [row("service defaults measured", None, "",
                f"base_model {job.base_model}, eval_fraction {job.eval_fraction}, {settings}; CPU, fp32")]
    base_dir = resolve_base_model(job.base_model)  # both sides start from the same checkpoint
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        for group in [*sst2_groups(sizes), banking77_group(sizes), goemotions_group(sizes, work)]:
            rows += group_rows(group, base_dir, work)
    return rows


def run(quick: bool) -> list[dict]:
    return measure(QUICK if quick else FULL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the reduced cases (no test split)")
    size.add_argument("--smoke", action="store_true", help="the full cases' code on tiny row counts")
    arguments = parser.parse_args()
    print_table(measure(SMOKE if arguments.smoke else QUICK if arguments.quick else FULL))
