"""evaluation you can trust: data warnings, job kinds, evaluation reports, decision settings, deployment history

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as table:
        table.add_column(sa.Column("warnings", sa.JSON, nullable=True))
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="train"))
        table.add_column(sa.Column("warnings", sa.JSON, nullable=True))
    with op.batch_alter_table("models") as table:
        table.add_column(sa.Column("min_confidence", sa.Float, nullable=True))
        table.add_column(sa.Column("thresholds", sa.JSON, nullable=True))
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="SET NULL"), nullable=True),
        sa.Column("previous_model_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("deployments")
    op.drop_table("evaluations")
    with op.batch_alter_table("models") as table:
        table.drop_column("thresholds")
        table.drop_column("min_confidence")
    with op.batch_alter_table("jobs") as table:
        table.drop_column("warnings")
        table.drop_column("kind")
    with op.batch_alter_table("datasets") as table:
        table.drop_column("warnings")
