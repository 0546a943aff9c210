"""One delivery of an evaluation job (jobs.kind "evaluate"): the report of a registered model on a dataset,
stored as an Evaluation (source "dataset") when the job ends.

The lease, heartbeat, cancel and failure handling are a training job's (training.run_leased). The forward pass
runs in chunks of CHUNK_ROWS rows: the job's progress counts them (total_steps = chunks + 1, the last step being
the report), and a cancel stops it between two. A delivery after a lost worker starts again from the first chunk:
an evaluation keeps no checkpoint (it is one forward pass).
"""
from __future__ import annotations

import torch

from app.db import jobs, store
from app.db.models import Dataset, Job, ModelRecord
from app.settings import Settings
from model_core.checkpoint import load_model
from model_core.evaluate import predict_logits
from model_core.predict import thresholds_over
from model_core.report import build_report
from model_core.train import TrainingStopped, resolve_device
from worker.training import Heartbeat, ProgressRecorder, SessionFactory, job_row, run_leased

CHUNK_ROWS = 256
BATCH_SIZE = 64


def run_evaluation_job(job_id: str, settings: Settings, session_factory: SessionFactory) -> None:
    """One delivery of the evaluation job `job_id`."""
    def work(job: Job, worker_id: str, heartbeat: Heartbeat) -> None:
        with session_factory() as session:
            model = job_row(session, ModelRecord, job.model_id, "model")
            examples = store.read_dataset(job_row(session, Dataset, job.dataset_id, "dataset")).examples
        device = resolve_device(settings.device)
        loaded = load_model(model.path, device=device)
        chunks = [examples[start:start + CHUNK_ROWS] for start in range(0, len(examples), CHUNK_ROWS)]
        recorder = ProgressRecorder(session_factory, job_id, worker_id)
        recorder.on_start(len(chunks) + 1, device.type, {})
        logits = []
        for done, chunk in enumerate(chunks, start=1):
            if heartbeat.should_stop():
                raise TrainingStopped()
            logits.append(predict_logits(loaded.model, loaded.tokenizer, chunk, loaded.max_len, BATCH_SIZE))
            recorder.on_progress(done)
        report = build_report(torch.cat(logits), examples, loaded.labels, temperature=loaded.temperature,
                              thresholds=thresholds_over(loaded.labels, loaded.thresholds, model.thresholds))
        metrics = {"eval_loss": report["metrics"]["loss"], "eval_accuracy": report["metrics"]["accuracy"],
                   "eval_macro_f1": report["metrics"]["macro_f1"]}
        with session_factory() as session:
            jobs.succeed_evaluation(session, job_id, worker_id, report=report, total_steps=len(chunks) + 1,
                                    metrics=metrics, device=device.type)

    run_leased(job_id, settings, session_factory, work, "evaluation")
