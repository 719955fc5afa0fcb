"""SQLite tables for the embedded mode: resources and their history, events, secrets, accounts and audit."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

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
    Column("frameworks", JSON, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created", String(40), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("user", String(63), nullable=True, index=True),
    Column("project", String(63), nullable=True, index=True),
    Column("role", String(16), nullable=True),
    Column("hash", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires", String(40), nullable=True),
    Column("last_used", String(40), nullable=True),
    Column("revoked", String(40), nullable=True),
)

bindings = Table(
    "bindings",
    metadata,
    Column("project", String(63), primary_key=True),
    Column("subject_type", String(16), primary_key=True),
    Column("subject_name", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("project", String(63), nullable=True, index=True),
    Column("action", String(100), nullable=False, index=True),
    Column("target", String(500), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("details", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
