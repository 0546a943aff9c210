"""multi-label datasets and models, the values "auto" chose for a job

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as table:
        table.add_column(sa.Column("label_delimiter", sa.String(8), nullable=True))
        table.add_column(sa.Column("allow_no_label", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("auto_choices", sa.JSON, nullable=True))
    with op.batch_alter_table("models") as table:
        table.add_column(sa.Column("problem_type", sa.String(40), nullable=False,
                                   server_default="single_label_classification"))


def downgrade() -> None:
    with op.batch_alter_table("models") as table:
        table.drop_column("problem_type")
    with op.batch_alter_table("jobs") as table:
        table.drop_column("auto_choices")
    with op.batch_alter_table("datasets") as table:
        table.drop_column("allow_no_label")
        table.drop_column("label_delimiter")
