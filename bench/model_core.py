"""model_core benchmark, side by side with transformers in one run on the same SST-2 batches and the
same MiniLM weights (fp32, CPU unless a GPU is present):

- fine-tuning throughput (examples/s), batch 32, max_len 128, random order with dynamic padding and
  length-grouped order (shuffled mega-batches of 50 batches sorted by length); model_core's own
  loop (`Trainer.run`) too; both sides use torch's fused AdamW, clipping and the linear schedule;
- useful FLOP/s: standard BERT training FLOPs (6 x weights x tokens + attention) on real tokens only,
  as a fraction of a measured fp32 GEMM peak (large torch.mm);
- inference: batch-32 sentences/s and batch-1 median latency;
- full run only: SST-2 dev accuracy after 1 epoch on a seeded 8,000-row subset (both sides, same
  batches); with --banking77, Banking77 test accuracy after a full-train run.
Every throughput is the median of several repeats, model_core and transformers interleaved.
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from model_core.base_models import resolve_base_model
from model_core.checkpoint import load_model, save_model
from model_core.config import ModelConfig, TrainConfig
from model_core.data import Example, read_table
from model_core.evaluate import evaluate, label_ids
from model_core.optim import linear_schedule, make_optimizer
from model_core.predict import Predictor
from model_core.train import Trainer, TrainingStopped, build_trainer, epoch_batches, finetune
from testkit.data import SHARED_DATA

SECTION = "model_core"
DATA = SHARED_DATA
BASE = "minilm-l6"
BATCH = 32
MAX_LEN = 128
WARMUP_STEPS = 2  # untimed steps before each implementation's first timing
POOLING = "cls"  # as the other side, transformers' BertForSequenceClassification (and the README's figures)


@dataclass
class Sizes:
    steps: int  # timed training steps per repeat
    repeats: int
    inference_batches: int
    latency_inputs: int


QUICK = Sizes(steps=4, repeats=3, inference_batches=4, latency_inputs=20)
FULL = Sizes(steps=20, repeats=5, inference_batches=12, latency_inputs=60)


def log(message: str) -> None:
    print(f"[bench {SECTION} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "metric": metric, "value": round(value, 4), "unit": unit, "note": note}


class TransformersTrainer:
    """transformers' BertForSequenceClassification with the same optimizer, schedule and clipping."""

    def __init__(self, base_dir: Path, examples: Sequence[Example], labels: list[str], cfg: TrainConfig,
                 total_steps: int):
        from transformers import BertForSequenceClassification, BertTokenizerFast
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()
        torch.manual_seed(cfg.seed)
        self.tokenizer = BertTokenizerFast.from_pretrained(base_dir)
        self.model = BertForSequenceClassification.from_pretrained(base_dir, num_labels=len(labels)).train()
        self.optimizer = make_optimizer(self.model, cfg.learning_rate, cfg.weight_decay)
        self.scheduler = linear_schedule(self.optimizer, round(cfg.warmup_ratio * total_steps), total_steps)
        self.texts = [e.text for e in examples]
        self.targets = label_ids(examples, labels, "the training set")
        self.cfg = cfg

    def step(self, index: list[int]) -> float:
        batch = self.tokenizer([self.texts[i] for i in index], truncation=True, max_length=self.cfg.max_len,
                               padding=True, return_tensors="pt")
        loss = self.model(**batch, labels=self.targets[index]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, truncation=True, max_length=self.cfg.max_len, padding=True, return_tensors="pt")
        return self.model(**batch).logits.softmax(dim=-1)


def gemm_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n x n torch.mm on this machine with torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def bert_training_flops(lengths: Sequence[int], cfg: ModelConfig, n_labels: int) -> float:
    """Forward + backward (3x forward) FLOPs of BERT classification on these real-token lengths."""
    D, dim_ff = cfg.dim, cfg.dim_ff
    per_token = cfg.n_layers * 2 * (4 * D * D + 2 * D * dim_ff)  # q, k, v, out projections; feed-forward
    per_sequence = 2 * D * D + 2 * D * n_labels  # pooler, head
    forward = sum(t * per_token + cfg.n_layers * 4 * t * t * D + per_sequence for t in lengths)
    return 3 * forward


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved_seconds(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each candidate in each of `repeats` rounds, alternating which one goes first."""
    names = list(candidates)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            seconds[name].append(timed(candidates[name]))
    return seconds


def interleaved_medians(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    return {name: statistics.median(s) for name, s in interleaved_seconds(candidates, repeats).items()}


def training_rows(sizes: Sizes, base_dir: Path, work: Path) -> list[dict]:
    table = read_table(DATA / "sst2" / "train.tsv")
    n_batches = WARMUP_STEPS + sizes.steps * sizes.repeats
    examples = random.Random(0).sample(table.examples, BATCH * 60 * max(1, n_batches // 50 + 1))
    cfg = TrainConfig(batch_size=BATCH, max_len=MAX_LEN, warmup_ratio=0.0, seed=1, total_steps=10_000,
                      pooling=POOLING)
    ours = build_trainer(examples, None, BASE, work / "throughput", cfg, device="cpu")
    own_loop = build_trainer(examples, None, BASE, work / "own-loop", cfg, device="cpu")
    theirs = TransformersTrainer(base_dir, examples, ours.labels, cfg, total_steps=10_000)
    shuffled = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(shuffled)
    grouped = epoch_batches(ours.lengths, BATCH, cfg.seed, epoch=0)  # what the own loop runs in its epoch 0
    orders = {"random": [shuffled[i : i + BATCH] for i in range(0, BATCH * n_batches, BATCH)],
              "length-grouped": grouped[:n_batches]}
    for batch in orders["random"][:WARMUP_STEPS]:
        ours.step(batch)
        theirs.step(batch)
    run_own_loop(own_loop, WARMUP_STEPS)

    def work_of(batches: list[list[int]]) -> tuple[int, float]:
        lengths = [ours.lengths[i] for batch in batches for i in batch]
        return len(lengths), bert_training_flops(lengths, ours.model_cfg, len(ours.labels))

    peaks = [gemm_peak_flops()]
    measured: dict[str, tuple[int, float, float]] = {}  # name -> (examples, FLOPs, seconds)
    for order, batches in orders.items():
        log(f"training throughput, {order} order")
        timed_batches = batches[WARMUP_STEPS : WARMUP_STEPS + sizes.steps]  # identical for both sides
        candidates = {"model_core": steps_of(ours, timed_batches), "transformers": steps_of(theirs, timed_batches)}
        if order == "length-grouped":  # model_core's default: its own loop on its own batches
            candidates["model_core own loop"] = lambda: run_own_loop(own_loop, sizes.steps)
        seconds = interleaved_seconds(candidates, sizes.repeats)
        for name in ("model_core", "transformers"):
            measured[f"{order}: {name}"] = (*work_of(timed_batches), statistics.median(seconds[name]))
        if "model_core own loop" in seconds:
            own_batches = grouped[WARMUP_STEPS : own_loop.state.step]
            measured[f"{order}: model_core own loop"] = (*work_of(own_batches), sum(seconds["model_core own loop"]))
        peaks.append(gemm_peak_flops())
    peak = max(peaks)  # the machine is shared: the best of several measurements is nearest its real peak
    rows = [row("fp32 GEMM peak", peak / 1e9, "GFLOP/s",
                f"best of {len(peaks)}: 2048^3 torch.mm, {torch.get_num_threads()} threads")]
    for name, (n_examples, flops, secs) in measured.items():
        rows.append(row(f"train {name}", n_examples / secs, "examples/s", f"{sizes.repeats} x {sizes.steps} steps"))
        rows.append(row(f"train {name}: useful FLOP/s / GEMM peak", flops / secs / peak, "fraction",
                        "real tokens only; goal >= 0.70"))
    for order, batches in orders.items():
        real = sum(ours.lengths[i] for batch in batches for i in batch)
        padded = sum(max(ours.lengths[i] for i in batch) * len(batch) for batch in batches)
        rows.append(row(f"train {order}: real / padded tokens", real / padded, "fraction"))
        rows.append(row(f"train {order}: model_core / transformers",
                        measured[f"{order}: transformers"][2] / measured[f"{order}: model_core"][2], "x",
                        "identical batches; goal >= 1.0"))

    def flops_per_s(name: str) -> float:
        _, flops, secs = measured[name]
        return flops / secs

    best_theirs = max(flops_per_s(f"{order}: transformers") for order in orders)
    rows.append(row("train: model_core own loop / transformers best", flops_per_s("length-grouped: model_core own loop")
                    / best_theirs, "x", "per unit of useful work (batches differ); goal >= 1.25"))
    return rows


def steps_of(trainer, batches: list[list[int]]) -> Callable[[], object]:
    return lambda: [trainer.step(batch) for batch in batches]


def run_own_loop(trainer: Trainer, steps: int) -> None:
    """`steps` more steps of the trainer's own loop (stopped through its should_stop callback)."""
    stop_at = trainer.state.step + steps
    try:
        trainer.run(on_step=None, on_eval=None, should_stop=lambda: trainer.state.step >= stop_at, progress_bar=False)
    except TrainingStopped:
        pass


def inference_rows(sizes: Sizes, work: Path, base_dir: Path) -> list[dict]:
    dev = read_table(DATA / "sst2" / "dev.tsv").examples
    texts = [e.text for e in dev]
    cfg = TrainConfig(max_len=MAX_LEN, pooling=POOLING)
    trainer = build_trainer(dev, None, BASE, work / "inference", cfg, device="cpu")
    model_dir = save_model(work / "inference" / "model", trainer.model, trainer.tokenizer, trainer.model_cfg,
                           trainer.labels, max_len=MAX_LEN)
    predictor = Predictor.load(model_dir)
    theirs = TransformersTrainer(model_dir, dev, trainer.labels, cfg, total_steps=1)
    theirs.model.eval()
    batches = [texts[i : i + BATCH] for i in range(0, BATCH * sizes.inference_batches, BATCH)]

    def ours_batches():
        for batch in batches:
            predictor.predict_proba([(t, None) for t in batch])

    def theirs_batches():
        for batch in batches:
            theirs.predict(batch)

    log("inference")
    ours_batches(), theirs_batches()  # warm-up
    seconds = interleaved_medians({"model_core": ours_batches, "transformers": theirs_batches}, sizes.repeats)
    n = BATCH * len(batches)
    rows = [row(f"inference batch 32: {name}", n / secs, "sentences/s", "SST-2 dev, file order")
            for name, secs in seconds.items()]
    rows.append(row("inference batch 32: model_core / transformers",
                    seconds["transformers"] / seconds["model_core"], "x"))
    singles = texts[: sizes.latency_inputs]
    latency = {
        "model_core": statistics.median(timed(lambda t=t: predictor.predict_proba([(t, None)])) for t in singles),
        "transformers": statistics.median(timed(lambda t=t: theirs.predict([t])) for t in singles),
    }
    rows += [row(f"inference batch 1 median latency: {name}", secs * 1000, "ms") for name, secs in latency.items()]
    return rows


def timed_finetune(name: str, train, evaluation, out_dir: Path, cfg: TrainConfig, device: str):
    log(f"{name} run")
    started = time.perf_counter()
    result = finetune(train, evaluation, BASE, out_dir, cfg, device=device)
    return result, time.perf_counter() - started


def sst2_accuracy_rows(work: Path, base_dir: Path) -> list[dict]:
    """1 epoch on a seeded 8,000-row subset, batch 32, lr 5e-5, warmup 0.1, max_len 64; dev accuracy."""
    train = random.Random(0).sample(read_table(DATA / "sst2" / "train.tsv").examples, 8000)
    dev = read_table(DATA / "sst2" / "dev.tsv").examples
    cfg = TrainConfig(epochs=1, batch_size=32, learning_rate=5e-5, warmup_ratio=0.1, max_len=64, seed=42,
                      pooling=POOLING)
    ours, ours_seconds = timed_finetune("SST-2 accuracy", train, dev, work / "sst2-accuracy", cfg, device="cpu")

    trainer = build_trainer(train, None, BASE, work / "unused", cfg, device="cpu")  # the same batches
    batches = epoch_batches(trainer.lengths, cfg.batch_size, cfg.seed, 0)
    theirs = TransformersTrainer(base_dir, train, trainer.labels, cfg, total_steps=len(batches))
    started = time.perf_counter()
    for batch in batches:
        theirs.step(batch)
    theirs_seconds = time.perf_counter() - started
    theirs.model.eval()
    dev_texts = [e.text for e in dev]
    predictions = torch.cat([theirs.predict(dev_texts[i : i + 64]).argmax(-1) for i in range(0, len(dev), 64)])
    theirs_accuracy = (predictions == label_ids(dev, trainer.labels, "dev")).float().mean().item()
    note = "8,000-row seeded SST-2 subset, 1 epoch, same length-grouped batches"
    return [
        row("SST-2 dev accuracy: model_core", ours.eval.accuracy, "accuracy", note),
        row("SST-2 dev accuracy: transformers", theirs_accuracy, "accuracy", note),
        row("SST-2 1-epoch training time: model_core", ours_seconds, "s", "incl. per-epoch eval"),
        row("SST-2 1-epoch training time: transformers", theirs_seconds, "s"),
    ]


def banking77_rows(work: Path) -> list[dict]:
    """Full-train run (hyperparameters fixed in advance, no test-set selection), then test accuracy."""
    train = read_table(DATA / "banking77" / "train.csv").examples
    test = read_table(DATA / "banking77" / "test.csv").examples
    cfg = TrainConfig(epochs=5, batch_size=32, learning_rate=1e-4, warmup_ratio=0.1, max_len=64, seed=42,
                      pooling=POOLING)
    result, seconds = timed_finetune("Banking77 full-train", train, None, work / "banking77", cfg, device="auto")
    loaded = load_model(result.model_dir)
    metrics = evaluate(loaded.model, loaded.tokenizer, test, loaded.labels, loaded.max_len)
    note = "10,003 train rows, 5 epochs, lr 1e-4, batch 32, max_len 64; last epoch's model"
    return [row("Banking77 test accuracy", metrics["accuracy"], "accuracy", note),
            row("Banking77 test macro-F1", metrics["macro_f1"], "macro-F1", note),
            row("Banking77 training time", seconds, "s", result.device)]


def run(quick: bool, banking77: bool = False) -> list[dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = QUICK if quick else FULL
    base_dir = resolve_base_model(BASE)
    with tempfile.TemporaryDirectory(prefix="bench-model-core-") as tmp:
        work = Path(tmp)
        rows = training_rows(sizes, base_dir, work) + inference_rows(sizes, work, base_dir)
        if not quick:
            rows += sst2_accuracy_rows(work, base_dir)
        if banking77:
            rows += banking77_rows(work)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.model_core")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--banking77", action="store_true")
    arguments = parser.parse_args()
    for result_row in run(arguments.quick, arguments.banking77):
        print(result_row)
