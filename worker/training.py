"""One delivery of a fine-tuning job: take the lease, train with model_core, record progress, register the model.

Progress and metric points are written in batches: a train point (the mean loss since the last one) every
TRAIN_POINT_EVERY steps and at every epoch end, an eval point after every evaluation, and the job's progress at
its first step and at most every PROGRESS_FLUSH_S seconds in between. A heartbeat thread renews the lease and picks
up cancel requests. Every change of the job's status goes through app.db.jobs.
"""
from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from app.db import jobs, store
from app.db.models import Dataset, Job, MetricPoint, new_id, utcnow
from app.evaluation import auto_deploy
from app.settings import Settings
from model_core.auto import Choices
from model_core.base_models import resolve_base_model
from model_core.config import TrainConfig
from model_core.data import AnyExample, Table
from model_core.data_checks import TrainingRows, training_rows
from model_core.train import EvalInfo, StepInfo, TrainingStopped, TrainResult, finetune

log = logging.getLogger(__name__)

TRAIN_POINT_EVERY = 10
PROGRESS_FLUSH_S = 2.0
MAX_ERROR_CHARS = 2000
SessionFactory = Callable[[], Session]
Row = TypeVar("Row")


class Heartbeat(threading.Thread):
    """Renews the job's lease every `interval` seconds; notices cancel requests and a lost lease."""

    def __init__(self, session_factory: SessionFactory, job_id: str, worker_id: str, interval: float):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.session_factory, self.job_id, self.worker_id, self.interval = session_factory, job_id, worker_id, interval
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                with self.session_factory() as session:
                    held, cancel_requested = jobs.renew_lease(session, self.job_id, self.worker_id)
            except Exception:  # a store hiccup: try again next beat; the lease tolerates a few
                log.exception("heartbeat of job %s failed", self.job_id)
                continue
            if cancel_requested:
                self.cancel_requested.set()
            if not held:
                self.lease_lost.set()
                return

    def should_stop(self) -> bool:
        return self.cancel_requested.is_set() or self.lease_lost.is_set()

    def stop(self) -> None:
        self._stopped.set()
        self.join()


class ProgressRecorder:
    """model_core callbacks -> batched writes of the job's progress and its metric points."""

    def __init__(self, session_factory: SessionFactory, job_id: str, worker_id: str):
        self.session_factory, self.job_id, self.worker_id = session_factory, job_id, worker_id
        self.warnings: list[dict] = []  # the data checks of the job's rows (model_core.data_checks)
        self.points: list[MetricPoint] = []
        self.losses: list[float] = []
        self.step, self.epoch = 0, 0.0
        self.metrics: dict[str, float] = {}
        self.started = False
        self.superseded_from: int | None = None  # first step of this delivery: older points from there on go
        self.last_flush = time.monotonic()

    def on_start(self, total_steps: int, device: str, choices: Choices) -> None:
        with self.session_factory() as session:
            jobs.record_start(session, self.job_id, self.worker_id, total_steps, device, choices, self.warnings)

    def on_warnings(self, warnings: list[dict]) -> None:
        self.warnings = warnings

    def on_step(self, info: StepInfo) -> None:
        first_of_delivery = not self.started
        if first_of_delivery:
            self.started, self.superseded_from = True, info.step
        epoch_ended = math.floor(info.epoch + 1e-9) > math.floor(self.epoch + 1e-9) or info.step == info.total_steps
        self.losses.append(info.loss)
        self.step, self.epoch = info.step, info.epoch
        if epoch_ended or len(self.losses) >= TRAIN_POINT_EVERY:
            mean_loss = sum(self.losses) / len(self.losses)
            self.points.append(MetricPoint(job_id=self.job_id, kind="train", step=info.step, epoch=info.epoch,
                                           loss=mean_loss, learning_rate=info.learning_rate, time=utcnow()))
            self.metrics["train_loss"] = mean_loss
            self.losses = []
            self.flush()
        elif first_of_delivery or time.monotonic() - self.last_flush >= PROGRESS_FLUSH_S:
            self.flush()

    def on_eval(self, info: EvalInfo) -> None:
        self.points.append(MetricPoint(job_id=self.job_id, kind="eval", step=info.step, epoch=info.epoch,
                                       loss=info.loss, accuracy=info.accuracy, macro_f1=info.macro_f1, time=utcnow()))
        self.metrics.update(eval_loss=info.loss, eval_accuracy=info.accuracy, eval_macro_f1=info.macro_f1)
        self.flush()

    def flush(self) -> None:
        """One transaction: the pending points and the job's progress."""
        with self.session_factory() as session:
            jobs.record_progress(session, self.job_id, self.worker_id, step=self.step, epoch=self.epoch,
                                 metrics=self.metrics, points=self.points, superseded_from=self.superseded_from)
        self.points, self.superseded_from = [], None
        self.last_flush = time.monotonic()

    def on_progress(self, step: int) -> None:
        """Progress without metric points (an evaluation job's batches): written at the first call of a delivery,
        then at most every PROGRESS_FLUSH_S."""
        first_of_delivery = not self.started
        self.started, self.step = True, step
        if first_of_delivery or time.monotonic() - self.last_flush >= PROGRESS_FLUSH_S:
            self.flush()


def _train(job: Job, table: Table, eval_examples: list[AnyExample] | None, settings: Settings,
           recorder: ProgressRecorder, heartbeat: Heartbeat) -> tuple[TrainResult, list[AnyExample] | None]:
    """The job's training (train_table's), its data checks reported first; also the rows it was evaluated on."""
    cfg = TrainConfig.model_validate(job.hyperparameters)
    rows = training_rows(table.examples, eval_examples, job.eval_fraction, cfg)
    recorder.on_warnings(rows.warnings)
    result = train_rows(rows, table, job.base_model, settings.artifact_dir / "jobs" / job.id, cfg,
                        device=settings.device, on_step=recorder.on_step, on_eval=recorder.on_eval,
                        on_start=recorder.on_start, should_stop=heartbeat.should_stop)
    return result, rows.eval


def train_table(table: Table, eval_examples: list[AnyExample] | None, eval_fraction: float | None, base_model: str,
                out_dir: Path, cfg: TrainConfig, **run_options) -> TrainResult:
    """What a job trains on its data (bench/quality.py runs it as the service's defaults): the table's rows
    (deduplicated when cfg.dedupe), less a stratified `eval_fraction` held out (seeded by cfg.seed) for evaluation
    and best-model selection when no eval set is given (model_core.data_checks.training_rows); see train_rows."""
    return train_rows(training_rows(table.examples, eval_examples, eval_fraction, cfg), table, base_model, out_dir,
                      cfg, **run_options)


def train_rows(rows: TrainingRows, table: Table, base_model: str, out_dir: Path, cfg: TrainConfig,
               **run_options) -> TrainResult:
    """Fine-tunes on the rows, labels in the table's first-seen order; resumes from out_dir's checkpoints.
    `run_options`: finetune's device and callbacks."""
    return finetune(rows.train, rows.eval, resolve_base_model(base_model), out_dir, cfg,
                    labels=list(table.labels), resume=True, **run_options)


def _register(session_factory: SessionFactory, job: Job, worker_id: str, result: TrainResult, settings: Settings,
              held_out: list[AnyExample]) -> None:
    """Moves the model to ARTIFACT_DIR/models/<id>/, decides whether to deploy it as AUTO_DEPLOY says (`held_out`:
    the rows it was evaluated on; app.evaluation.auto_deploy), then ends the job with it, its held-out evaluation
    report and that deployment in one transaction: a job seen succeeded has its deployment decided."""
    model_dir = settings.artifact_dir / "models" / new_id()
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(result.model_dir, model_dir)
    with session_factory() as session:
        try:
            deployment = auto_deploy(session, result.report, held_out, job.id, settings)
            record = jobs.succeed(session, job.id, worker_id, model_dir=model_dir, total_steps=result.total_steps,
                                  epoch=result.epoch, metrics=_final_metrics(result),
                                  device=result.device, report=result.report, deploy_detail=deployment.detail,
                                  warnings=[deployment.warning] if deployment.warning else [])
        except BaseException:  # no model record points at the directory: the job fails, or a retry trains anew
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
        if record is None:  # another worker took the job over
            shutil.rmtree(model_dir, ignore_errors=True)
            return
        outcome = deployment.outcome
        if deployment.detail is not None and not record.deployed:
            outcome = "not deployed: another model was deployed after the decision (see the job's warnings)"
        log.info("job %s: model %s %s", job.id, record.id, outcome)
    shutil.rmtree(settings.artifact_dir / "jobs" / job.id / "checkpoints", ignore_errors=True)


def _final_metrics(result: TrainResult) -> dict:
    metrics = {"train_loss": result.train_loss}
    if result.eval is not None:
        metrics.update(eval_loss=result.eval.loss, eval_accuracy=result.eval.accuracy,
                       eval_macro_f1=result.eval.macro_f1)
        if result.eval.micro_f1 is not None:  # multi-label: kept in the model's metrics
            metrics["eval_micro_f1"] = result.eval.micro_f1
    return metrics


Work = Callable[[Job, str, Heartbeat], None]  # (the leased job, this worker's id, its heartbeat)


def job_row(session: Session, table: type[Row], key: str | None, what: str) -> Row:
    """A row the job reads (its dataset, its model); ValueError, which fails the job, when it was deleted."""
    row = session.get(table, key) if key else None
    if row is None:
        raise ValueError(f"the job's {what} was deleted")
    return row


def run_leased(job_id: str, settings: Settings, session_factory: SessionFactory, work: Work, what: str) -> None:
    """One delivery of a job of any kind: takes the lease (or drops the delivery), runs `work` while a heartbeat
    renews the lease, and ends the job cancelled when `work` stops at a cancel (TrainingStopped), failed with the
    first line of any other error. `work` ends the job itself when it succeeds."""
    worker_id = jobs.this_worker_id()
    with session_factory() as session:
        job = jobs.try_acquire_lease(session, job_id, worker_id, settings.job_lease_seconds)
    if job is None:
        log.info("job %s: not taken (unknown, finished, cancelled or running elsewhere)", job_id)
        return
    log.info("job %s: attempt %d on %s", job_id, job.attempts, worker_id)
    heartbeat = Heartbeat(session_factory, job_id, worker_id, interval=min(1.0, settings.job_lease_seconds / 4))
    heartbeat.start()
    try:
        work(job, worker_id, heartbeat)
    except TrainingStopped:
        if not heartbeat.lease_lost.is_set():
            with session_factory() as session:
                jobs.end_cancelled(session, job_id, worker_id)
    except Exception as error:
        log.exception("%s job %s failed", what, job_id)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        with session_factory() as session:
            jobs.fail(session, job_id, worker_id, message[:MAX_ERROR_CHARS])
    finally:
        heartbeat.stop()


def run_job(job_id: str, settings: Settings, session_factory: SessionFactory) -> None:
    """One delivery of a fine-tuning job."""
    def work(job: Job, worker_id: str, heartbeat: Heartbeat) -> None:
        with session_factory() as session:
            train_set = job_row(session, Dataset, job.dataset_id, "dataset")
            eval_set = session.get(Dataset, job.eval_dataset_id) if job.eval_dataset_id else None
        table = store.read_dataset(train_set)
        eval_examples = None if eval_set is None else store.read_dataset(eval_set).examples
        recorder = ProgressRecorder(session_factory, job_id, worker_id)
        result, held_out = _train(job, table, eval_examples, settings, recorder, heartbeat)
        _register(session_factory, job, worker_id, result, settings, held_out)

    run_leased(job_id, settings, session_factory, work, "fine-tuning")
