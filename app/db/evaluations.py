"""Evaluation reports of models (model_core.report's shape) in the store: the held-out report the worker stores at
the end of a training job, and the reports of evaluation jobs on a labeled dataset."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Evaluation

HELD_OUT = "held_out"  # on the job's evaluation set (its held-out split, or the eval dataset it was given)
ON_DATASET = "dataset"  # by an evaluation job, on a dataset


def add(session: Session, *, model_id: str, report: dict, source: str, dataset_id: str | None = None,
        job_id: str | None = None) -> Evaluation:
    """A new evaluation of the model, flushed in the caller's transaction (the caller commits)."""
    evaluation = Evaluation(model_id=model_id, dataset_id=dataset_id, job_id=job_id, source=source, report=report)
    session.add(evaluation)
    session.flush()
    return evaluation


def held_out(session: Session, model_id: str) -> Evaluation | None:
    """The model's held-out evaluation (the newest, should a job have stored one twice); None when it has none."""
    return session.scalars(select(Evaluation).where(Evaluation.model_id == model_id, Evaluation.source == HELD_OUT)
                           .order_by(Evaluation.created_at.desc())).first()


def on_dataset(session: Session, model_id: str, dataset_id: str) -> Evaluation | None:
    """The newest report of the model on the dataset (an evaluation job's or the deploy gate's), if any."""
    return session.scalars(select(Evaluation).where(
        Evaluation.model_id == model_id, Evaluation.dataset_id == dataset_id, Evaluation.source == ON_DATASET)
        .order_by(Evaluation.created_at.desc())).first()
