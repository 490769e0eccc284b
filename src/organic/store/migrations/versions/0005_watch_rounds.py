"""watch rounds: the state of each round of `organic loop --watch`, so a restarted watcher resumes it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=True),
        sa.Column("mark", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=1024), nullable=False),
        sa.Column("incumbent", sa.String(length=128), nullable=True),
        sa.Column("candidate", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("watch_rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watch_rounds_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("watch_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watch_rounds_created_at"))
    op.drop_table("watch_rounds")
