"""Alembic's environment, run programmatically by ``server.store.migrate`` on its connection.

There is no ``alembic.ini``: the caller puts an open SQLAlchemy connection (inside a
transaction) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from server.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the migrations through server.store.migrate(), not the alembic CLI")

# Batch mode lets the same scripts alter tables on SQLite (copy and move) and PostgreSQL.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
