"""comparisons: pairwise human evaluation items and votes (the /compare page)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comparisons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("context", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("model_a", sa.String(length=128), nullable=False),
        sa.Column("model_b", sa.String(length=128), nullable=False),
        sa.Column("reply_a", sa.Text(), nullable=False),
        sa.Column("reply_b", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "comparison_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=128), nullable=False),
        sa.Column("choice", sa.String(length=3), nullable=False),
        sa.Column("flipped", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparisons.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("comparison_id", "rater"),
    )
    with op.batch_alter_table("comparison_votes", schema=None) as batch_op:
        batch_op.create_index("ix_comparison_votes_rater", ["rater"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("comparison_votes", schema=None) as batch_op:
        batch_op.drop_index("ix_comparison_votes_rater")
    op.drop_table("comparison_votes")
    op.drop_table("comparisons")
