"""Initial schema: inspections and threshold changes.

Revision ID: 0001
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("threshold_source", sa.String(16), nullable=False),
        sa.Column("anomalous", sa.Boolean, nullable=False),
        sa.Column("pixel_threshold", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_type", sa.String(32), nullable=False),
        sa.Column("map_sha256", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(20), nullable=True),
        sa.Column("verdict_by", sa.String(128), nullable=True),
        sa.Column("verdict_note", sa.Text, nullable=True),
        sa.Column("verdict_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_inspections_created_at", "inspections", ["created_at"])
    op.create_index("ix_inspections_model_id", "inspections", ["model", "id"])
    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("old_value", sa.Float, nullable=False),
        sa.Column("new_value", sa.Float, nullable=False),
        sa.Column("target_fpr", sa.Float, nullable=True),
        sa.Column("expected_fpr", sa.Float, nullable=True),
        sa.Column("n_normal", sa.Integer, nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
    )
    op.create_index("ix_threshold_changes_model", "threshold_changes", ["model"])


def downgrade() -> None:
    op.drop_table("threshold_changes")
    op.drop_table("inspections")
