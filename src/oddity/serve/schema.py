"""The tables of the inspection store (SQLAlchemy Core), as the latest migration leaves them.

`inspections`: one row per scored image: the model (name and version), the score, the
threshold in force and where it came from (`model` or a per-request `request` override), the
label, the sha256 of the stored image and anomaly-map files, and the operator's verdict.
`threshold_changes`: every change of a model's threshold, with who made it and why.
Schema changes are Alembic migrations in `oddity/serve/migrations/versions/`; a test checks
that these tables and the migrations agree.
"""
from __future__ import annotations

from sqlalchemy import (Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table,
                        Text)

metadata = MetaData()

inspections = Table(
    "inspections", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("model", String(128), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("threshold_source", String(16), nullable=False),
    Column("anomalous", Boolean, nullable=False),
    Column("pixel_threshold", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("image_type", String(32), nullable=False),
    Column("map_sha256", String(64), nullable=True),
    Column("verdict", String(20), nullable=True),
    Column("verdict_by", String(128), nullable=True),
    Column("verdict_note", Text, nullable=True),
    Column("verdict_at", DateTime, nullable=True),
    Index("ix_inspections_model_id", "model", "id"),
)

threshold_changes = Table(
    "threshold_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(128), nullable=False, index=True),
    Column("model_version", String(64), nullable=False),
    Column("old_value", Float, nullable=False),
    Column("new_value", Float, nullable=False),
    Column("target_fpr", Float, nullable=True),
    Column("expected_fpr", Float, nullable=True),
    Column("n_normal", Integer, nullable=False),
    Column("who", String(128), nullable=False),
    Column("why", Text, nullable=False),
)
