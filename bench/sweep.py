"""Tuning runs: what a job trains with some hyperparameters set, on a quality case's tuning rows, over several
seeds. It never reads a test split, so a change to the defaults can be chosen here and measured once by
`bench.quality` at the end (docs/decisions.md has the sweeps that chose today's rules).

    python -m bench.sweep banking77 --seeds 42 1 2 3 --set learning_rate=1e-4 --set epochs=4 [--device cuda]

Cases, each scored on rows that take part in neither training nor model selection:
- sst2-720: 720 SST-2 train rows drawn with each --subset-seeds seed (the benchmark's final figures use 1, 2, 3:
  tune on others, 10, 11, 12 by default); dev accuracy.
- banking77: train.csv less 1,000 rows held back (stratified, bench.quality.SUBSET_SEED); accuracy on those.
- goemotions: all of train.tsv; dev macro-F1 at the thresholds tuned on the held-out rows.
Each run is one job's training: the defaults (bench.quality.service_defaults) with the --set values, TrainConfig's
seed (head initialisation, data order and held-out split) set to each of --seeds. A line per run and the mean per
case are printed, and every run is appended to --out as a JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from bench.quality import (
    Group,
    Sizes,
    banking77_group,
    goemotions_group,
    ours,
    service_defaults,
    sst2_groups,
)
from model_core.config import TrainConfig
from model_core.data import read_table
from model_core.train import DeviceUnavailable
from testkit.data import SHARED_DATA

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.jsonl"
HELD_BACK = 1000  # Banking77 train rows scored, never trained on
TUNING_SUBSETS = (10, 11, 12)


def tuning_groups(case_name: str, subset_seeds: tuple[int, ...], work: Path, rows: int | None) -> list[Group]:
    """The case's tuning rows as bench.quality groups (`rows`: cap the training rows, for a smoke run)."""
    if case_name == "sst2-720":
        sizes = Sizes(sst2=((rows or 720, subset_seeds),), banking77_rows=None, goemotions_rows=None, final=False,
                      eval_rows=None)
        return sst2_groups(sizes)
    if case_name == "banking77":
        total = len(read_table(SHARED_DATA / "banking77" / "train.csv").examples)
        return [banking77_group(Sizes(sst2=(), banking77_rows=rows or total - HELD_BACK, goemotions_rows=None,
                                      final=False, eval_rows=None))]
    return [goemotions_group(Sizes(sst2=(), banking77_rows=None, goemotions_rows=rows, final=False, eval_rows=None),
                             work)]


def config_with(settings: list[str]) -> TrainConfig:
    """The defaults' TrainConfig with each "name=value" (a JSON value, or a bare string such as auto) set."""
    values = service_defaults()[1].model_dump()
    for setting in settings:
        name, _, text = setting.partition("=")
        if name not in values or not text:
            raise SystemExit(f"--set {setting!r}: expected name=value with a TrainConfig field name "
                             f"({', '.join(values)})")
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError:
            values[name] = text
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as error:
        raise SystemExit(f"--set: {error}") from None


def sweep(case_name: str, seeds: list[int], settings: list[str], subset_seeds: tuple[int, ...], device: str,
          out: Path, rows: int | None = None) -> list[dict]:
    """Trains and scores every (training set, seed); returns the runs, each also appended to `out` as it ends."""
    cfg = config_with(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = Path(tmp)
        for group in tuning_groups(case_name, subset_seeds, work, rows):
            for index, case in enumerate(group.cases):
                for seed in seeds:
                    outcome = ours(case, work / f"run-{len(runs)}", cfg.model_copy(update={"seed": seed}), device)
                    run = {"case": case_name, "about": group.about, "seed": seed, "set": settings,
                           "subset_seed": subset_seeds[index] if case_name == "sst2-720" else None,
                           group.headline: round(getattr(outcome, group.headline), 4),
                           "macro_f1": round(outcome.macro_f1, 4), "seconds": round(outcome.seconds, 1)}
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    with out.open("a", encoding="utf-8") as lines:  # as each run ends: a cut sweep keeps its runs
                        lines.write(json.dumps(run) + "\n")
    return runs


def summary(runs: list[dict]) -> str:
    metric = "accuracy" if "accuracy" in runs[0] else "macro_f1"
    values = [run[metric] for run in runs]
    return (f"{runs[0]['case']} {' '.join(runs[0]['set']) or '(defaults)'}: {metric} mean {statistics.mean(values):.4f}"
            f", min {min(values):.4f}, max {max(values):.4f} over {len(values)} runs")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a row count >= 1")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("sst2-720", "banking77", "goemotions"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="TrainConfig seeds, one run each")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="a hyperparameter other than the default (repeatable)")
    parser.add_argument("--subset-seeds", type=int, nargs="+", default=list(TUNING_SUBSETS),
                        help="sst2-720: the seeds drawing the training rows (not 1-3, the benchmark's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the runs are appended to")
    parser.add_argument("--rows", type=positive, help="train on this many rows only (a smoke run)")
    arguments = parser.parse_args(argv)
    if arguments.case == "sst2-720" and set(arguments.subset_seeds) & {1, 2, 3}:
        parser.error("--subset-seeds 1, 2 and 3 draw the benchmark's own SST-2 720 subsets: tune on others")
    try:
        runs = sweep(arguments.case, arguments.seeds, arguments.settings, tuple(arguments.subset_seeds),
                     arguments.device, arguments.out, arguments.rows)
    except DeviceUnavailable as error:
        parser.error(str(error))
    print(summary(runs), file=sys.stderr)


if __name__ == "__main__":
    main()
