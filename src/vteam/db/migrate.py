"""Run Alembic migrations programmatically, so `vteam up` upgrades the database at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def config(path: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "vteam.db:migrations")
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    return cfg


def upgrade(path: Path) -> None:
    command.upgrade(config(path), "head")
