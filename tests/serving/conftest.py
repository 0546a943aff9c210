"""Serving fixtures: two real MiniLM classifiers (fresh heads) made once per session, and one app per test module
built by tests/factories.serving_app with those models registered."""
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.factories import ServingApp, minilm_with_random_head, save_minilm_classifier, serving_app

LABELS = ["negative", "positive"]
MAX_LEN = 128


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def classifier_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Two different classifiers (seeds 0 and 1); apps copy them into their own ARTIFACT_DIR."""
    root = tmp_path_factory.mktemp("classifiers")
    return tuple(save_minilm_classifier(root / name, minilm_with_random_head(len(LABELS), seed, head_std=2.0),
                                        LABELS, MAX_LEN) for name, seed in (("a", 0), ("b", 1)))


@pytest.fixture(scope="module")
async def served(tmp_path_factory, classifier_dirs) -> AsyncIterator[ServingApp]:
    """One app per test module: no auth, default serving settings, model_a deployed."""
    async with serving_app(tmp_path_factory.mktemp("served"), classifier_dirs) as serving:
        yield serving
