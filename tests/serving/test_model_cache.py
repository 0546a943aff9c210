"""The LRU of loaded models: bounded, least recently used out first, one load for concurrent requests."""
import asyncio

import pytest

from app.serving.model_cache import ModelCache
from model_core.predict import Predictor

pytestmark = pytest.mark.anyio


async def test_lru_bounded_and_single_flight(classifier_dirs):
    loads = []

    def load(model_dir):
        loads.append(model_dir)
        return Predictor.load(model_dir)

    cache = ModelCache(capacity=1, load=load)
    dir_a, dir_b = classifier_dirs
    first, second = await asyncio.gather(cache.get("a", dir_a), cache.get("a", dir_a))
    assert first is second and loads == [dir_a]
    assert await cache.get("a", dir_a) is first and loads == [dir_a]
    await cache.get("b", dir_b)
    assert "b" in cache and "a" not in cache  # capacity 1: a was evicted
    assert await cache.get("a", dir_a) is not first and loads == [dir_a, dir_b, dir_a]


async def test_failed_load_is_not_cached(tmp_path):
    cache = ModelCache(capacity=2, load=Predictor.load)
    with pytest.raises(Exception, match="not found"):
        await cache.get("missing", tmp_path / "missing")
    assert "missing" not in cache
