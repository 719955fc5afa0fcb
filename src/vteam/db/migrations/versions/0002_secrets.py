"""Encrypted secrets: users' forge tokens and links, projects' tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secrets")
