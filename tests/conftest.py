"""Shared fixtures: data files, a tiny random base model, SQLite and PostgreSQL stores, Redis, a real Celery
worker process and API clients. Reused by every test package; what they are built with lives in
tests/factories.py and testkit/."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from testkit.processes import WorkerProcess
from testkit.store import REDIS_URL, postgres_database, sqlite_settings_for
from tests.factories import make_tiny_bert, write_sst2


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
    with postgres_database("test") as url:
        yield url


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
