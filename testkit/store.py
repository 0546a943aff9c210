"""The stores the service runs on (a migrated SQLite file, a fresh PostgreSQL database, the shared Redis) and
the model registry filled the way a finished job fills it."""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from sqlalchemy.orm import Session

from app.db import store
from app.db.jobs import JobStatus
from app.db.migrate import upgrade_to_head
from app.db.models import Job
from app.settings import Settings

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

REDIS_URL = "redis://127.0.0.1:6379/0"


def sqlite_settings_for(root: Path, **overrides) -> Settings:
    """Settings of the embedded default under `root` (SQLite, no broker, no API keys), the store migrated."""
    settings = Settings(**{"database_url": f"sqlite:///{root / 'app.db'}", "artifact_dir": root / "artifacts",
                           "celery_broker_url": None, "api_keys": None, **overrides})
    upgrade_to_head(settings.database_url)
    return settings


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database named `<prefix>_<random>`; yields its URL, drops it at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def production_store(prefix: str, artifact_dir: Path) -> Iterator[Settings]:
    """Settings on a fresh PostgreSQL database (`postgres_database(prefix)`) and a Celery queue of its own on the
    shared Redis, both deleted at the end; a short lease, so that a killed worker's job is taken over within seconds."""
    queue = f"{prefix}-training-{uuid.uuid4().hex[:8]}"
    with postgres_database(prefix) as url:
        try:
            yield Settings(database_url=url, celery_broker_url=REDIS_URL, celery_queue=queue,
                           artifact_dir=artifact_dir, api_keys=None, job_lease_seconds=3)
        finally:
            # the queue, and the bindings kombu keeps for the exchange named after it
            bindings = (f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
            redis.Redis.from_url(REDIS_URL).delete(queue, *bindings)


def register_model_dir(session_factory: Callable[[], Session], model_dir: Path, deploy: bool = False) -> str:
    """Registers `model_dir` (named by its model id) under a succeeded job; returns the model id."""
    with session_factory() as session:
        job = Job(base_model="minilm-l6", status=JobStatus.succeeded, hyperparameters={},
                  metrics={"eval_accuracy": 0.5})
        session.add(job)
        session.flush()
        model_id = store.register_model(session, job, model_dir).id
        session.commit()
        if deploy:
            store.deploy_model(session, model_id, reason="manual")
        return model_id


def register_copy(session_factory: Callable[[], Session], artifact_dir: Path, source: Path,
                  deploy: bool = False) -> str:
    """Registers a copy of the classifier directory `source` under ARTIFACT_DIR/models/; returns its model id."""
    model_dir = new_model_dir(artifact_dir)
    shutil.copytree(source, model_dir)
    return register_model_dir(session_factory, model_dir, deploy)


def new_model_dir(artifact_dir: Path) -> Path:
    """Where a model lives: ARTIFACT_DIR/models/<model_id>/."""
    return artifact_dir / "models" / uuid.uuid4().hex
