"""SQLite tables for the embedded mode: resources, their change history, session events and secrets."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("kind", String(63), primary_key=True),
    Column("namespace", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("uid", String(36), nullable=False, unique=True),
    Column("resource_version", Integer, nullable=False),
    Column("body", JSON, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("rv", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(63), nullable=False, index=True),
    Column("namespace", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("type", String(16), nullable=False),
    Column("body", JSON, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("session_uid", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("runner_seq", Integer, nullable=True),
    Column("ts", String(40), nullable=False),
    Column("type", String(100), nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("session_uid", "runner_seq", name="uq_events_runner_seq"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("updated", String(40), nullable=False),
)
