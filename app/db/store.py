"""Queries the API and the worker share: pages and the model registry (the job lifecycle is app.db.jobs)."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Job, ModelRecord
from app.errors import ModelNotFound
from model_core.config import SINGLE_LABEL


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
