"""Alembic environment for vTeam's SQLite database (sync driver; run from a thread at start)."""

from alembic import context
from sqlalchemy import create_engine, pool

from vteam.db.schema import metadata

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
