"""Serving fixtures: two real MiniLM classifiers (fresh heads) made once per session, and apps built by
create_app on a migrated SQLite store (the embedded default) with those models registered, run with their
lifespan and reached through httpx's ASGI transport."""
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.db.session import make_session_factory
from app.main import create_app
from app.settings import Settings
from testkit.data import SST2_DEV
from testkit.store import new_model_dir, register_model_dir, sqlite_settings_for
from tests.serving.models import make_minilm_classifier


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def classifier_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Two different classifiers (seeds 0 and 1); apps copy them into their own ARTIFACT_DIR."""
    root = tmp_path_factory.mktemp("classifiers")
    return make_minilm_classifier(root / "a", seed=0), make_minilm_classifier(root / "b", seed=1)


@dataclass
class ServingApp:
    client: httpx.AsyncClient
    app: object
    settings: Settings
    model_a: str  # deployed at start
    model_b: str

    def register_copy(self, source: Path) -> str:
        """Registers a further copy of a classifier directory (e.g. one to delete); returns its id."""
        model_dir = new_model_dir(self.settings.artifact_dir)
        shutil.copytree(source, model_dir)
        return register_model_dir(self.app.state.session_factory, model_dir)


@asynccontextmanager
async def serving_app(
    root: Path, classifier_dirs: tuple[Path, Path], deploy: bool = True, **settings
) -> AsyncIterator[ServingApp]:
    settings = sqlite_settings_for(root, **settings)
    session_factory = make_session_factory(settings.database_url)
    model_ids = []
    for index, source in enumerate(classifier_dirs):
        model_dir = new_model_dir(settings.artifact_dir)
        shutil.copytree(source, model_dir)
        model_ids.append(register_model_dir(session_factory, model_dir, deploy=deploy and index == 0))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving.test", timeout=120) as client:
            yield ServingApp(client, app, settings, *model_ids)


@pytest.fixture(scope="module")
async def served(tmp_path_factory, classifier_dirs) -> AsyncIterator[ServingApp]:
    """One app per test module: no auth, default serving settings, model_a deployed."""
    async with serving_app(tmp_path_factory.mktemp("served"), classifier_dirs) as serving:
        yield serving
