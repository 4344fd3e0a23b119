"""Alembic environment for kdiag's store: always run programmatically by
:func:`kdiag.store.migrate.upgrade`, on a connection it hands over in
``config.attributes["connection"]``."""

from alembic import context

from kdiag.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
