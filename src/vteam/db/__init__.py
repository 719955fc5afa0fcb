"""The embedded mode's one SQLite database: engine, write serialisation, schema and migrations."""

from vteam.db.engine import Database, open_database

__all__ = ["Database", "open_database"]
