"""Alembic environment: the same migrations run on SQLite and PostgreSQL (psycopg 3)."""
from alembic import context

from app.db.models import Base
from app.db.session import make_engine
from app.settings import load_settings

config = context.config
database_url = config.attributes.get("database_url") or load_settings().database_url


def run_migrations_online() -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
