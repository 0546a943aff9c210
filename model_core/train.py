"""Fine-tuning loop: length-grouped batches with dynamic padding, AdamW with warmup/decay, gradient
clipping, evaluation with best-model selection, early stopping, and exactly resumable checkpoints.

out_dir/checkpoints/step-<n>/state.pt  model, optimizer, scheduler, RNG and loop state (newest 2 kept)
out_dir/model/                         the final Hugging Face-compatible model (best eval by macro-F1)

Multi-label examples train the same network with one sigmoid per label (binary cross-entropy, the head's biases
starting at the labels' base rates). Evaluations during training predict a label at probability 0.5; after
training, each label's threshold is tuned on the evaluation set for that label's F1, saved beside the model
(model/thresholds.json), and the model's final evaluation is the one at those thresholds.

After training with an evaluation set, a single-label model's temperature is fitted on its evaluation logits
(model/calibration.json), and the evaluation report (model_core.report: metrics, calibration, baselines fitted on
the training examples, ...) is saved as model/evaluation.json and returned in the TrainResult.

The "auto" hyperparameters are resolved from the training data first (model_core.auto); the choices are
reported to `on_start` and in the TrainResult.

A step's data is a pure function of (seed, epoch, position in the epoch), so a checkpoint's step
number is its data position; with the RNG states it makes a resumed run end with the same weights
as an uninterrupted one.
"""
from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from model_core.auto import Choices, class_weights, resolve
from model_core.base_models import resolve_base_model, resolve_pooling
from model_core.checkpoint import (
    CheckpointError,
    load_model,
    load_pretrained_encoder,
    save_model,
    save_temperature,
    save_thresholds,
)
from model_core.config import MULTI_LABEL, Device, ModelConfig, Pooling, TrainConfig, with_our_names
from model_core.data import AnyExample, DataError, check_problem_type, length_grouped_batches, problem_type_of
from model_core.evaluate import LOSSES, evaluate, label_matrix, label_targets, logit_metrics, predict_logits
from model_core.model import Classifier
from model_core.optim import linear_schedule, make_optimizer
from model_core.report import build_report, fit_temperature, save_report
from model_core.tokenization import Tokenizer

CHECKPOINTS_KEPT = 2
MEGA_BATCH = 50  # batches per length-sorted group
EVAL_BATCH_SIZE = 64


@dataclass
class StepInfo:
    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float


@dataclass
class EvalInfo:
    step: int
    epoch: float
    loss: float
    accuracy: float
    macro_f1: float
    per_class: dict
    confusion: list[list[int]] | None = None  # single-label
    micro_f1: float | None = None  # multi-label; `accuracy` is then subset (exact-match) accuracy
    weighted_f1: float | None = None  # F1 averaged over the classes weighted by their support
    thresholds: dict[str, float] | None = None  # multi-label: the thresholds the predictions used


@dataclass
class TrainResult:
    model_dir: Path
    total_steps: int  # planned when training started
    train_loss: float  # mean loss over the last epoch's steps
    eval: EvalInfo | None  # the evaluation of the saved model (best macro-F1)
    device: str
    pooling: Pooling  # the classifier's pooling: cfg.pooling, or what "auto" resolved it to
    pooling_reason: str  # why, in one line
    steps: int = 0  # steps taken: total_steps unless early stopping ended the run sooner
    epoch: float = 0.0  # fractional epochs taken
    choices: Choices = field(default_factory=dict)  # what each "auto" hyperparameter became, and why
    report: dict | None = None  # model_core.report's report of the saved model on the evaluation set


class DeviceUnavailable(ValueError):
    """The requested device does not exist on this machine."""


class TrainingStopped(Exception):
    """should_stop() answered True; the newest checkpoint (if any) is where a resume continues."""


@dataclass
class LoopState:
    """What besides weights, optimizer and RNG a checkpoint must hold to continue exactly."""

    step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_steps: int = 0
    best_eval: dict | None = None  # asdict(EvalInfo) of the saved model
    evals_since_best: int = 0


def resolve_device(device: Device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} was asked for but no CUDA GPU is available")
    return resolved


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (example indices) of one epoch; the same for the same seed and epoch."""
    return length_grouped_batches(lengths, batch_size, random.Random(f"{seed}:{epoch}"), MEGA_BATCH)


@dataclass
class Trainer:
    """One fine-tuning run's objects; `finetune` builds it and drives `run`. `cfg` is concrete (no "auto")."""

    model: Classifier
    tokenizer: Tokenizer
    model_cfg: ModelConfig
    cfg: TrainConfig
    labels: list[str]
    train: Sequence[AnyExample]
    eval: Sequence[AnyExample] | None
    out_dir: Path
    device: torch.device
    max_len: int
    pooling_reason: str  # why the model pools as it does (model.pooling), in one line
    choices: Choices = field(default_factory=dict)
    state: LoopState = field(default_factory=LoopState)

    def __post_init__(self):
        self.steps_per_epoch = math.ceil(len(self.train) / self.cfg.batch_size)
        self.total_steps = self.cfg.total_steps or self.cfg.epochs * self.steps_per_epoch
        self.optimizer = make_optimizer(self.model, self.cfg.learning_rate, self.cfg.weight_decay)
        warmup_steps = round(self.cfg.warmup_ratio * self.total_steps)
        self.scheduler = linear_schedule(self.optimizer, warmup_steps, self.total_steps)
        self.problem_type = problem_type_of(self.train)
        self.loss = LOSSES[self.problem_type]
        self.targets = label_targets(self.train, self.labels, "the training set", known="the given label list")
        self.class_weights = class_weights(self.cfg, self.targets, len(self.labels))  # single-label only
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(self.device)
        self.texts = [e.text for e in self.train]
        has_pairs = any(e.text_pair is not None for e in self.train)
        self.pairs = [e.text_pair for e in self.train] if has_pairs else None
        self.lengths = self.tokenizer.lengths(self.texts, self.pairs, self.max_len)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.model_dir = self.out_dir / "model"

    # --- one optimizer step ---------------------------------------------------------------------
    def step(self, index: list[int]) -> tuple[float, float]:
        """Forward, backward, clip, AdamW step on one batch; returns (loss, learning rate used)."""
        batch = self.tokenizer.encode(
            [self.texts[i] for i in index], None if self.pairs is None else [self.pairs[i] for i in index], self.max_len
        )
        with self.autocast:
            logits = self.model(*(t.to(self.device, non_blocking=True) for t in
                                  (batch.input_ids, batch.segment_ids, batch.input_mask)))  # (B, L)
        loss = self.loss(logits.float(), self.targets[index].to(self.device), weight=self.class_weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        learning_rate = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item(), learning_rate

    # --- the loop -------------------------------------------------------------------------------
    def run(self, on_step, on_eval, should_stop, progress_bar: bool) -> None:
        state = self.state
        batches: list[list[int]] | None = None
        with tqdm(total=self.total_steps, initial=state.step, desc="train", unit="step",
                  disable=not progress_bar, dynamic_ncols=True) as bar:
            while state.step < self.total_steps:
                epoch, position = divmod(state.step, self.steps_per_epoch)
                if batches is None or position == 0:
                    batches = epoch_batches(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch)
                if position == 0:
                    state.epoch_loss_sum, state.epoch_loss_steps = 0.0, 0
                if should_stop is not None and should_stop():
                    raise TrainingStopped(f"stopped at step {state.step} of {self.total_steps}")
                loss, learning_rate = self.step(batches[position])
                state.step += 1
                state.epoch_loss_sum += loss
                state.epoch_loss_steps += 1
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(StepInfo(state.step, self.total_steps, self.epoch, loss, learning_rate))
                stop_early = self.eval_due() and self.evaluate_and_keep_best(on_eval)
                if self.cfg.save_steps and state.step % self.cfg.save_steps == 0:
                    self.save_checkpoint()
                if stop_early:
                    break

    @property
    def epoch(self) -> float:
        return self.state.step / self.steps_per_epoch

    def eval_due(self) -> bool:
        step = self.state.step
        return self.eval is not None and (
            step % self.steps_per_epoch == 0
            or step == self.total_steps
            or (self.cfg.eval_steps is not None and step % self.cfg.eval_steps == 0)
        )

    def evaluate_and_keep_best(self, on_eval) -> bool:
        """Evaluates; saves the model when macro-F1 improves. True when early stopping says stop."""
        metrics = evaluate(self.model, self.tokenizer, self.eval, self.labels, self.max_len, EVAL_BATCH_SIZE)
        metrics.pop("n")
        info = EvalInfo(step=self.state.step, epoch=self.epoch, **metrics)
        if on_eval is not None:
            on_eval(info)
        state = self.state
        if state.best_eval is None or info.macro_f1 > state.best_eval["macro_f1"]:
            state.best_eval, state.evals_since_best = asdict(info), 0
            self.save_final_model()
        else:
            state.evals_since_best += 1
        patience = self.cfg.early_stopping_patience
        return patience is not None and state.evals_since_best >= patience

    def save_final_model(self) -> None:
        save_model(self.model_dir, self.model, self.tokenizer, self.model_cfg, self.labels, max_len=self.max_len,
                   problem_type=self.problem_type)

    def finish(self) -> dict:
        """After training with an evaluation set: on the saved (best) model's evaluation logits, tunes a multi-label
        model's thresholds (each label's for its F1; its evaluation becomes the one at those thresholds) or fits a
        single-label model's temperature, saves them beside it, and saves and returns its report."""
        best = load_model(self.model_dir, device=self.device)
        logits = predict_logits(best.model, best.tokenizer, self.eval, self.max_len, EVAL_BATCH_SIZE)
        temperature, thresholds = 1.0, None
        if self.problem_type == MULTI_LABEL:
            metrics = logit_metrics(logits, self.eval, self.labels, thresholds="tune")
            metrics.pop("n")
            save_thresholds(self.model_dir, self.labels, metrics["thresholds"])
            state = self.state
            state.best_eval = asdict(EvalInfo(step=state.best_eval["step"], epoch=state.best_eval["epoch"],
                                              **metrics))
            thresholds = list(metrics["thresholds"].values())
        else:
            temperature = fit_temperature(logits, label_targets(self.eval, self.labels, "the evaluation set"))
            save_temperature(self.model_dir, temperature)
        report = build_report(logits, self.eval, self.labels, temperature=temperature, thresholds=thresholds,
                              train_examples=self.train, fitted_here=True)
        save_report(self.model_dir, report)
        return report

    # --- checkpoints ----------------------------------------------------------------------------
    def run_signature(self) -> dict:
        """What a checkpoint must agree on to be resumed by this run."""
        return {"n_train": len(self.train), "labels": self.labels, "total_steps": self.total_steps,
                "config": self.cfg.model_dump(), "pooling": self.model.pooling}

    def save_checkpoint(self) -> Path:
        """Writes checkpoints/step-<n>/ through a temporary directory and a rename; keeps the newest 2."""
        final = self.checkpoint_dir / f"step-{self.state.step}"
        tmp = self.checkpoint_dir / f".step-{self.state.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "rng": rng, "loop": asdict(self.state),
                    "signature": self.run_signature()}, tmp / "state.pt")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in checkpoints_newest_first(self.checkpoint_dir)[CHECKPOINTS_KEPT:]:
            shutil.rmtree(old)
        return final

    def load_checkpoint(self, path: Path) -> None:
        try:
            saved = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
        signature = saved["signature"]
        if "config" in signature:  # a checkpoint written before the hyperparameters took the API's names
            signature["config"] = with_our_names(signature["config"], f"checkpoint {path}")
        differing = [k for k, v in self.run_signature().items() if signature.get(k) != v]
        if differing:
            raise CheckpointError(f"checkpoint {path} belongs to a different run ({', '.join(differing)} differ); "
                                  "use a new output directory or the original data and settings")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"]["torch"])
        if "cuda" in saved["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(saved["rng"]["cuda"], self.device)
        self.state = LoopState(**saved["loop"])


def checkpoints_newest_first(checkpoint_dir: Path) -> list[Path]:
    """Complete checkpoints (step-<n> with a state.pt), newest first."""
    if not checkpoint_dir.is_dir():
        return []
    found = [p for p in checkpoint_dir.glob("step-*") if p.name[5:].isdigit() and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]), reverse=True)


def build_trainer(train: Sequence[AnyExample], eval: Sequence[AnyExample] | None, base: str | Path, out_dir: Path,
                  cfg: TrainConfig, labels: list[str] | None = None, device: Device = "auto") -> Trainer:
    """The seeded model (pretrained encoder, fresh head), optimizer and schedule of a run, on its device; the
    "auto" hyperparameters of `cfg` resolved from `train`."""
    if not train:
        raise DataError("the training set is empty")
    labels = list(labels) if labels is not None else sorted({label for e in train for label in e.labels})
    if eval is not None:  # fail before any work
        check_problem_type(eval, problem_type_of(train), "the evaluation set", "the training set")
        label_targets(eval, labels, "the evaluation set")
    resolved_device = resolve_device(device)
    base_dir = resolve_base_model(base)
    tokenizer = Tokenizer.from_dir(base_dir)
    model_cfg = ModelConfig.from_json(base_dir / "config.json")
    pooling, pooling_reason = resolve_pooling(cfg.pooling, base_dir)
    cfg, choices = resolve(cfg, train, tokenizer, model_cfg.max_len, len(labels), has_eval=eval is not None,
                           pooling=(pooling, pooling_reason))
    torch.manual_seed(cfg.seed)
    model = Classifier(model_cfg, len(labels), pooling)
    load_pretrained_encoder(model, base_dir)
    if problem_type_of(train) == MULTI_LABEL:
        start_at_label_frequencies(model, label_matrix(train, labels, "the training set", known="the given label list"))
    model.to(resolved_device).train()
    return Trainer(model=model, tokenizer=tokenizer, model_cfg=model_cfg, cfg=cfg, labels=labels, train=train,
                   eval=eval, out_dir=Path(out_dir), device=resolved_device,
                   max_len=min(cfg.max_len, model_cfg.max_len), pooling_reason=pooling_reason,
                   choices=choices)


def start_at_label_frequencies(model: Classifier, targets: torch.Tensor) -> None:
    """Sets each label's head bias to the log-odds of its frequency in the (N, L) 0/1 targets, so that training
    starts at the labels' base rates. From a zero bias, the first steps of binary cross-entropy mostly push every
    sigmoid down to the rarity of positives, and on GoEmotions that push left the encoder giving every input nearly
    the same [CLS] features."""
    frequency = targets.mean(dim=0).clamp(1e-4, 1 - 1e-4)  # (L,) a label never or always true stays finite
    with torch.no_grad():
        model.head.bias.copy_(torch.logit(frequency))


def finetune(
    train: list[AnyExample],
    eval: list[AnyExample] | None,
    base: str | Path,
    out_dir: Path,
    cfg: TrainConfig,
    *,
    labels: list[str] | None = None,
    device: Device = "auto",
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[EvalInfo], None] | None = None,
    on_start: Callable[[int, str, Choices], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_bar: bool = False,
) -> TrainResult:
    """Fine-tunes `base` (a named base model or a HF BERT directory) on `train`, single-label or multi-label
    examples; see the module doc. `labels` fixes the class-id order (default: sorted training labels). `on_start`
    gets the planned steps, the device and what the "auto" hyperparameters became."""
    trainer = build_trainer(train, eval, base, out_dir, cfg, labels, device)
    newest = checkpoints_newest_first(trainer.checkpoint_dir) if resume else []
    if newest:
        trainer.load_checkpoint(newest[0])
    if on_start is not None:
        on_start(trainer.total_steps, trainer.device.type, trainer.choices)
    trainer.run(on_step, on_eval, should_stop, progress_bar)
    report = None
    if eval is None:
        trainer.save_final_model()
    else:
        report = trainer.finish()
    state = trainer.state
    return TrainResult(
        model_dir=trainer.model_dir,
        total_steps=trainer.total_steps,
        train_loss=state.epoch_loss_sum / max(1, state.epoch_loss_steps),
        eval=None if state.best_eval is None else EvalInfo(**state.best_eval),
        device=trainer.device.type,
        pooling=trainer.model.pooling,
        pooling_reason=trainer.pooling_reason,
        steps=state.step,
        epoch=trainer.epoch,
        choices=trainer.choices,
        report=report,
    )
