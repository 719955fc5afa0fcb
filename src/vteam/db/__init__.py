"""The embedded mode's one SQLite database: engine, group commit, read pool, schema and migrations."""

from vteam.db.engine import Database, open_database
from vteam.db.writer import NestedWrite

__all__ = ["Database", "NestedWrite", "open_database"]
