"""SQLAlchemy 2.0 models of the store. Tables are created only by the Alembic migrations in migrations/."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))  # "tsv" | "csv"
    n_rows: Mapped[int] = mapped_column(Integer)
    labels: Mapped[dict] = mapped_column(JSON)  # {label: count}, first-seen order
    label_column: Mapped[str] = mapped_column(String(255))
    text_column: Mapped[str] = mapped_column(String(255))
    text_pair_column: Mapped[str | None] = mapped_column(String(255))
    label_delimiter: Mapped[str | None] = mapped_column(String(8))  # set: multi-label, labels split on it
    allow_no_label: Mapped[bool] = mapped_column(Boolean, default=False)  # multi-label: an empty label cell is valid
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)  # the raw uploaded file
    warnings: Mapped[list | None] = mapped_column(JSON)  # [{"kind", "message", ...}]: data checks at upload
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    @property
    def multi_label(self) -> bool:
        return self.label_delimiter is not None


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="train")  # "train" | "evaluate" (model_id on dataset_id)
    status: Mapped[str] = mapped_column(String(16))  # an app.db.jobs.JobStatus, changed only there
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    eval_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    eval_fraction: Mapped[float | None] = mapped_column(Float)
    base_model: Mapped[str] = mapped_column(Text)
    hyperparameters: Mapped[dict] = mapped_column(JSON)  # effective, defaults filled
    auto_choices: Mapped[dict | None] = mapped_column(JSON)  # {name: {"value", "reason"}} of the "auto" values
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)  # train_loss, eval_loss, eval_accuracy, eval_macro_f1
    model_id: Mapped[str | None] = mapped_column(String(32))  # no FK: a model may be deleted, the job's record stays
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list | None] = mapped_column(JSON)  # [{"kind", "message", ...}]: data checks, model quality
    device: Mapped[str | None] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # deliveries that took the lease
    worker_id: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MetricPoint(Base):
    __tablename__ = "metric_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "train" | "eval"
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    loss: Mapped[float] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    macro_f1: Mapped[float | None] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelRecord(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    base_model: Mapped[str] = mapped_column(Text)
    labels: Mapped[list] = mapped_column(JSON)  # label names in class-id order
    problem_type: Mapped[str] = mapped_column(String(40), default="single_label_classification")  # transformers'
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(Text)  # HF-compatible directory
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    deployed: Mapped[bool] = mapped_column(Boolean, default=False)
    min_confidence: Mapped[float | None] = mapped_column(Float)  # single-label: below it /predict abstains
    thresholds: Mapped[dict | None] = mapped_column(JSON)  # {label: threshold} set by hand, over the tuned ones
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Evaluation(Base):
    """An evaluation report of a model: on its held-out split at the end of training (source "held_out") or on a
    labeled dataset by an evaluation job (source "dataset")."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))  # "held_out" | "dataset"
    report: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Deployment(Base):
    """One change of the deployed model, newest last: what was deployed, over what, and why."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    previous_model_id: Mapped[str | None] = mapped_column(String(32))  # no FK: the history outlives deletions
    reason: Mapped[str] = mapped_column(String(16))  # "manual" | "auto" | "rollback"
    detail: Mapped[dict | None] = mapped_column(JSON)  # the gate's comparison when one ran
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
