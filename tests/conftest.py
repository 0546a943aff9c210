"""Shared fixtures: data files, a tiny random base model, SQLite and PostgreSQL stores, Redis, a real Celery
worker process and API clients. Reused by tests/api, tests/worker, tests/deploy and tests/serving; the plain
helpers they use live in tests/harness.py."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from app.db.migrate import upgrade_to_head
from app.main import create_app
from app.settings import Settings
from tests.harness import (
    POSTGRES_ADMIN,
    REDIS_URL,
    WorkerProcess,
    make_tiny_bert,
    sqlite_settings_for,
    write_sst2,
)


@pytest.fixture(scope="session")
def train_tsv(tmp_path_factory) -> Path:
    return write_sst2(tmp_path_factory.mktemp("data") / "train.tsv", 48)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    return sqlite_settings_for(tmp_path)


@pytest.fixture
def client(sqlite_settings) -> Iterator[TestClient]:
    """The app on a fresh SQLite store; nothing consumes its queue (jobs stay queued)."""
    with TestClient(create_app(sqlite_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def celery_queue() -> Iterator[str]:
    """A queue of this session's own on the shared Redis, deleted at the end."""
    queue = f"test-training-{uuid.uuid4().hex[:8]}"
    yield queue
    redis.Redis.from_url(REDIS_URL).delete(queue)


@pytest.fixture(scope="session")
def production_settings(postgres_url, celery_queue, tmp_path_factory) -> Settings:
    """Postgres + Redis, a short lease so a killed worker's job is taken over within seconds."""
    return Settings(database_url=postgres_url, celery_broker_url=REDIS_URL, celery_queue=celery_queue,
                    artifact_dir=tmp_path_factory.mktemp("artifacts"), api_keys=None, job_lease_seconds=3)


@pytest.fixture(scope="session")
def celery_worker(production_settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(production_settings, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def production_client(production_settings, celery_worker) -> Iterator[TestClient]:
    """The app on PostgreSQL + Redis with a real Celery worker consuming its queue."""
    with TestClient(create_app(production_settings)) as test_client:
        yield test_client
