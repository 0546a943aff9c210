"""Command line: python -m model_core train|eval|predict.

Results go to stdout as JSON; the progress bar and errors go to stderr. Bad input (a missing or
malformed file, an unknown base model, an out-of-range hyperparameter, ...) ends with one line
"error: ..." on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

from pydantic import ValidationError

from model_core.base_models import BaseModelNotFound
from model_core.checkpoint import CheckpointError, load_model
from model_core.config import SEED_TRAIN_NAMES, ConfigError, Device, TrainConfig
from model_core.data import DataError, check_problem_type, read_table
from model_core.data_checks import training_rows
from model_core.evaluate import evaluate
from model_core.report import REPORT_FILE, evaluate_model_dir
from model_core.tokenization import VocabError
from model_core.train import DeviceUnavailable, finetune

USAGE_ERROR = 2
BAD_INPUT = (DataError, CheckpointError, ConfigError, VocabError, BaseModelNotFound, DeviceUnavailable, OSError)
PREDICT_CHUNK = 1024  # inputs read, length-sorted and predicted together


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other error."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m model_core", description="Fine-tune and use BERT text classifiers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="fine-tune a base model on a labeled TSV/CSV file")
    train.add_argument("--train", required=True, type=Path, help="training file (TSV, or CSV by .csv suffix)")
    train.add_argument("--eval", type=Path, help="evaluation file; the best epoch by macro-F1 is kept")
    train.add_argument("--base", default="minilm-l6", help="named base model or a Hugging Face BERT directory")
    train.add_argument("--out", required=True, type=Path, help="output directory (checkpoints/, model/)")
    train.add_argument("--config", type=Path, help="JSON file of training settings (the hyperparameters below by "
                       "name; the seed's lr, warmup and n_epochs too); flags override it")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    train.add_argument("--device", default="auto", choices=get_args(Device), help="cuda when present by default")
    add_column_flags(train)
    add_hyperparameter_flags(train)

    evaluation = commands.add_parser("eval", help="evaluate a fine-tuned model on a labeled file")
    evaluation.add_argument("--model", required=True, type=Path, help="fine-tuned model directory")
    evaluation.add_argument("--data", required=True, type=Path, help="labeled TSV/CSV file")
    evaluation.add_argument("--batch-size", type=int, default=64)
    evaluation.add_argument("--report", action="store_true", help="print the full evaluation report (calibration, "
                            "coverage, confident mistakes, baselines cross-validated on this file, ...)")
    add_column_flags(evaluation)

    predict = commands.add_parser("predict", help="classify texts; one JSON object per input per line")
    predict.add_argument("--model", required=True, type=Path, help="fine-tuned model directory")
    predict.add_argument("--all-scores", action="store_true", help='add "scores": {label: probability} (a '
                         "multi-label model always gives them)")
    predict.add_argument("--min-confidence", type=probability, help="single-label: answer label null with "
                         '"abstained": true when the top probability is below this, in [0, 1]')
    predict.add_argument("--file", type=Path, help="UTF-8 file with one text per line")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    return parser


def probability(value: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}")
    return number


def add_column_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label-column", help="default: the first of label, category, class")
    parser.add_argument("--text-column", help="default: the first of text, sentence, content, text_a, sentence1")
    parser.add_argument("--text-pair-column", help="default: text_b or sentence2 when present")
    parser.add_argument("--label-delimiter", help="multi-label data: each label cell holds labels separated by this, "
                        "e.g. ','")
    parser.add_argument("--allow-no-label", action="store_true", help="multi-label data: a row may have an empty "
                        "label cell (no label)")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def admitted(annotation) -> list:
    """The plain types and literal values a field's annotation admits, in order, Annotated and unions unpacked."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) is Annotated:
        return admitted(get_args(annotation)[0])
    members = get_args(annotation)
    return [kind for member in members for kind in admitted(member)] if members else [annotation]


def metavar(annotation) -> str:
    """N for an integer, X for a number, literal values as they are: "N|auto", "auto|none|balanced", "true|false"."""
    shown = {int: "N", float: "X", bool: "true|false"}
    return "|".join(shown.get(kind, kind) for kind in admitted(annotation) if kind is not type(None))


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """A flag per TrainConfig field (--learning-rate sets learning_rate), and the seed's names as aliases (--lr).

    The values stay strings here: TrainConfig validates and converts them, with the ranges of its fields; "null"
    is null."""
    group = parser.add_argument_group("hyperparameters", "override the --config file's values")
    aliases: dict[str, list[str]] = {}
    for seed_name, name in SEED_TRAIN_NAMES.items():
        aliases.setdefault(name, []).append(flag(seed_name))
    for name, field in TrainConfig.model_fields.items():
        help_text = f"{field.description} (default: {json.dumps(field.default)})".replace("%", "%%")
        group.add_argument(flag(name), *aliases.get(name, []), dest=name, metavar=metavar(field.annotation),
                           help=help_text)


def read_args_table(args: argparse.Namespace, path: Path):
    return read_table(path, args.label_column, args.text_column, args.text_pair_column, args.label_delimiter,
                      args.allow_no_label)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The --config file's settings with the hyperparameter flags laid over them."""
    settings = TrainConfig.from_json(args.config).model_dump() if args.config is not None else {}
    flags = {name: None if value == "null" else value
             for name in TrainConfig.model_fields if (value := getattr(args, name)) is not None}
    return TrainConfig.model_validate(settings | flags)


def run_train(args: argparse.Namespace) -> dict:
    cfg = train_config(args)
    train = read_args_table(args, args.train)
    evaluation = read_args_table(args, args.eval).examples if args.eval is not None else None
    rows = training_rows(train.examples, evaluation, None, cfg)
    result = finetune(rows.train, rows.eval, args.base, args.out, cfg, device=args.device,
                      resume=args.resume, progress_bar=True)
    summary = {"model_dir": str(result.model_dir), "device": result.device, "pooling": result.pooling,
               "steps": result.steps, "train_loss": result.train_loss, "warnings": rows.warnings}
    if result.eval is not None:
        reported = ("loss", "accuracy", "micro_f1", "macro_f1", "per_class", "thresholds")  # None: single-label
        summary |= {key: getattr(result.eval, key) for key in reported if getattr(result.eval, key) is not None}
        summary["best_step"] = result.eval.step
        summary["report"] = str(result.model_dir / REPORT_FILE)
    return summary


def run_eval(args: argparse.Namespace) -> dict:
    table = read_args_table(args, args.data)
    if args.report:
        return evaluate_model_dir(args.model, table.examples, batch_size=args.batch_size)
    loaded = load_model(args.model)
    check_problem_type(table.examples, loaded.problem_type, str(args.data), f"the model {args.model}")
    return evaluate(loaded.model, loaded.tokenizer, table.examples, loaded.labels, loaded.max_len, args.batch_size,
                    thresholds=loaded.thresholds)


def input_lines(path: Path) -> Iterator[str]:
    """The file's lines without their line ends; DataError naming a line that is not UTF-8."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError(f"{path} line {number}: not valid UTF-8", line=number) from None


def run_predict(args: argparse.Namespace) -> None:
    from model_core.predict import Predictor, prediction_row

    if (args.file is None) == (not args.texts):
        raise DataError("give either texts to classify or --file, not both or neither")
    predictor = Predictor.load(args.model)
    texts = input_lines(args.file) if args.file is not None else iter(args.texts)
    while chunk := [(text, None) for _, text in zip(range(PREDICT_CHUNK), texts, strict=False)]:
        encodings = predictor.tokenize(chunk)
        order = sorted(range(len(chunk)), key=lambda i: len(encodings[i]))
        rows: list[dict] = [{}] * len(chunk)
        for start in range(0, len(order), args.batch_size):
            index = order[start : start + args.batch_size]
            for i, probabilities in zip(index, predictor.predict_tokenized([encodings[i] for i in index]), strict=True):
                rows[i] = prediction_row(predictor.labels, probabilities.tolist(), args.all_scores,
                                         predictor.thresholds, args.min_confidence)
        sys.stdout.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def format_validation_error(error: ValidationError) -> str:
    problems = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()]
    return "invalid training settings: " + "; ".join(problems)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            print(json.dumps(run_train(args), indent=2))
        elif args.command == "eval":
            print(json.dumps(run_eval(args), indent=2))
        else:
            run_predict(args)
    except ValidationError as e:
        print(f"error: {format_validation_error(e)}", file=sys.stderr)
        return USAGE_ERROR
    except BAD_INPUT as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
