"""Queries the API and the worker share: pages, datasets' files, the model registry and deployments (the job
lifecycle is app.db.jobs, evaluation reports app.db.evaluations)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from sqlalchemy import Select, false, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Dataset, Deployment, Job, ModelRecord
from app.errors import DatasetFilesGone, DeployedModelChanged, ModelNotFound, NothingToRollBack, Unprocessable
from model_core.config import MULTI_LABEL, SINGLE_LABEL
from model_core.data import Table, read_table

DeployReason = Literal["manual", "auto", "rollback"]
DEPLOYMENTS_LOCK_KEY = 0x6465706C6F79  # PostgreSQL advisory lock id of deployment switches ("deploy")


def page(session: Session, query: Select, order_by, limit: int, offset: int) -> tuple[list, int]:
    """One page of `query` (newest first by `order_by`) and the total count."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(query.order_by(order_by.desc()).limit(limit).offset(offset)).all()
    return list(items), total


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_dataset(dataset: Dataset) -> Table:
    """The dataset's stored file, read as it was at upload; DatasetFilesGone when the file is no longer there."""
    if not Path(dataset.path).is_file():
        raise DatasetFilesGone(dataset.id)
    return read_table(Path(dataset.path), label_column=dataset.label_column, text_column=dataset.text_column,
                      text_pair_column=dataset.text_pair_column, label_delimiter=dataset.label_delimiter,
                      allow_no_label=dataset.allow_no_label)


# --- the model registry --------------------------------------------------------------------------------------------

def register_model(session: Session, job: Job, model_dir: Path) -> ModelRecord:
    """Records the HF-compatible directory ARTIFACT_DIR/models/<model_id>/ (its folder name is the id)."""
    config = json.loads((model_dir / "config.json").read_text())
    id2label = config["id2label"]
    record = ModelRecord(
        id=model_dir.name, job_id=job.id, base_model=job.base_model,
        labels=[id2label[str(i)] for i in range(len(id2label))],
        problem_type=config.get("problem_type") or SINGLE_LABEL, metrics=dict(job.metrics or {}),
        path=str(model_dir), size_bytes=directory_size(model_dir), deployed=False,
    )
    session.add(record)
    session.flush()
    return record


def deployed_model(session: Session) -> ModelRecord | None:
    return session.scalars(select(ModelRecord).where(ModelRecord.deployed.is_(True))).first()


# --- deployments: every change of the deployed model goes through deploy_model ---------------------------------------

def deploy_model(session: Session, model_id: str, *, reason: DeployReason, detail: dict | None = None) -> ModelRecord:
    """Makes `model_id` the one deployed model and records it (switch_deployed), committed."""
    record = session.get(ModelRecord, model_id)
    if record is None:
        raise ModelNotFound(model_id)
    switch_deployed(session, model_id, reason=reason, detail=detail)
    session.commit()
    session.refresh(record)
    return record


def switch_deployed(session: Session, model_id: str, *, reason: DeployReason, detail: dict | None = None) -> None:
    """In the caller's transaction: makes `model_id` (a registered model) the one deployed model, others cleared,
    and appends a Deployment (`detail`: the gate's comparison when one ran) to the history. Deploying the deployed
    model changes nothing.

    A decision made against the deployed model (a `detail` with `deployed_model_id`: the model the gate compared
    with, None when none was deployed) holds only while that model is deployed: DeployedModelChanged, with nothing
    changed, when another is by now. Switches hold one lock from reading the deployed model to the end of their
    transaction (_lock_deployments), so two decisions made against the same model cannot both win."""
    _lock_deployments(session)
    previous = deployed_model(session)
    previous_id = previous.id if previous is not None else None
    if previous_id == model_id:
        return
    if detail is not None and "deployed_model_id" in detail and detail["deployed_model_id"] != previous_id:
        raise DeployedModelChanged(model_id, detail["deployed_model_id"], previous_id)
    session.execute(update(ModelRecord).values(deployed=(ModelRecord.id == model_id)))
    session.add(Deployment(model_id=model_id, previous_model_id=previous_id, reason=reason, detail=detail))


def _lock_deployments(session: Session) -> None:
    """Takes the lock that serializes deployment switches, held until the transaction ends. PostgreSQL: a
    transaction-level advisory lock. SQLite: the database's write lock, which any write statement takes (this one
    changes no row), and after which reads see every committed switch."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(DEPLOYMENTS_LOCK_KEY)))
    else:
        session.execute(update(ModelRecord).where(false()).values(deployed=False))


def rollback_target(session: Session) -> str:
    """The model deployed before the deployed one (the previous_model_id of the deployment that made it current),
    still registered; NothingToRollBack otherwise. A rollback is a deployment too, so a second one undoes it."""
    current = deployed_model(session)
    if current is None:
        raise NothingToRollBack("no model is deployed: nothing to roll back")
    last = session.scalars(select(Deployment).where(Deployment.model_id == current.id)
                           .order_by(Deployment.id.desc())).first()
    previous = last.previous_model_id if last is not None else None
    if previous is None:
        raise NothingToRollBack(f"model {current.id} was deployed when no other model was: nothing to roll back to")
    if session.get(ModelRecord, previous) is None:
        raise NothingToRollBack(f"model {previous}, deployed before {current.id}, was deleted")
    return previous



def set_decision_settings(session: Session, record: ModelRecord, changes: dict) -> ModelRecord:
    """Applies a PATCH's `min_confidence` and `thresholds` (the keys present in `changes`; None clears one) and
    commits. Unprocessable, with nothing changed, for a setting of the other problem type or thresholds for
    labels the model lacks or outside [0, 1] (named)."""
    multi_label = record.problem_type == MULTI_LABEL
    if changes.get("min_confidence") is not None and multi_label:
        raise Unprocessable("min_confidence applies to single-label models; a multi-label model decides each label "
                            "by its threshold: set thresholds")
    thresholds = changes.get("thresholds")
    if thresholds is not None:
        if not multi_label:
            raise Unprocessable("thresholds apply to multi-label models; a single-label model answers its likeliest "
                                "label: set min_confidence to let it abstain")
        unknown = [label for label in thresholds if label not in record.labels]
        if unknown:
            raise Unprocessable(f"thresholds for label(s) the model lacks: {', '.join(map(repr, unknown))} (its "
                                f"labels: {', '.join(map(repr, record.labels))})")
        outside = [f"{label!r}: {value}" for label, value in thresholds.items() if not 0 <= value <= 1]
        if outside:
            raise Unprocessable(f"thresholds must be in [0, 1]: {', '.join(outside)}")
    for key in ("min_confidence", "thresholds"):
        if key in changes:
            setattr(record, key, changes[key])
    session.commit()
    session.refresh(record)
    return record
