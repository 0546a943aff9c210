"""Queries the API and the worker share: pages and the model registry (the job lifecycle is app.db.jobs)."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Job, ModelRecord
from app.errors import ModelNotFound, Unprocessable
from model_core.config import MULTI_LABEL, SINGLE_LABEL


def page(session: Session, query: Select, order_by, limit: int, offset: int) -> tuple[list, int]:
    """One page of `query` (newest first by `order_by`) and the total count."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(query.order_by(order_by.desc()).limit(limit).offset(offset)).all()
    return list(items), total


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


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


def deploy_model(session: Session, model_id: str) -> ModelRecord:
    """Makes `model_id` the one deployed model (others cleared in the same transaction)."""
    record = session.get(ModelRecord, model_id)
    if record is None:
        raise ModelNotFound(model_id)
    session.execute(update(ModelRecord).values(deployed=(ModelRecord.id == model_id)))
    session.commit()
    session.refresh(record)
    return record


def deployed_model(session: Session) -> ModelRecord | None:
    return session.scalars(select(ModelRecord).where(ModelRecord.deployed.is_(True))).first()


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
