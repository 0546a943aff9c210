"""datasets, jobs, metric points and models

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("label_column", sa.String(255), nullable=False),
        sa.Column("text_column", sa.String(255), nullable=False),
        sa.Column("text_pair_column", sa.String(255), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_datasets_created_at", "datasets", ["created_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("eval_dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("eval_fraction", sa.Float, nullable=True),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=True),
        sa.Column("epoch", sa.Float, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("model_id", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("device", sa.String(32), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_table(
        "metric_points",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Float, nullable=False),
        sa.Column("loss", sa.Float, nullable=False),
        sa.Column("learning_rate", sa.Float, nullable=True),
        sa.Column("accuracy", sa.Float, nullable=True),
        sa.Column("macro_f1", sa.Float, nullable=True),
        sa.Column("time", UTCDateTime, nullable=False),
    )
    op.create_index("ix_metric_points_job_id", "metric_points", ["job_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("base_model", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("deployed", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_models_created_at", "models", ["created_at"])


def downgrade() -> None:
    op.drop_table("models")
    op.drop_table("metric_points")
    op.drop_table("jobs")
    op.drop_table("datasets")
