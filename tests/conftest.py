"""Shared fixtures: data files, a tiny random base model, SQLite and PostgreSQL stores, Redis, a real Celery
worker process and API clients. Reused by every test package; what they are built with lives in
tests/factories.py and testkit/."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from testkit.processes import WorkerProcess, running_worker
from testkit.store import production_store, sqlite_settings_for
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
def production_settings(tmp_path_factory) -> Iterator[Settings]:
    """PostgreSQL + Redis for this test session (testkit.store.production_store)."""
    with production_store("test", tmp_path_factory.mktemp("artifacts")) as settings:
        yield settings


@pytest.fixture(scope="session")
def celery_worker(production_settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    yield from running_worker(production_settings, tmp_path_factory.mktemp("worker") / "worker.log")


@pytest.fixture(scope="session")
def production_client(production_settings, celery_worker) -> Iterator[TestClient]:
    """The app on PostgreSQL + Redis with a real Celery worker consuming its queue."""
    with TestClient(create_app(production_settings)) as test_client:
        yield test_client
