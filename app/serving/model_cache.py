"""An LRU of loaded models for /predict, bounded by MODEL_CACHE_SIZE.

A model is loaded in a worker thread (never on the event loop) and enters the cache only once fully loaded, so
no request ever sees a half-loaded model; concurrent requests for the same model share one load. Evicting a
model a request still uses is safe: the request holds its own reference until it finishes.
"""
import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from app import metrics

LoadedModel = TypeVar("LoadedModel")


class ModelCache(Generic[LoadedModel]):
    def __init__(self, capacity: int, load: Callable[[Path], LoadedModel]):
        self.capacity = capacity
        self._load = load
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models

    def cached(self, model_id: str) -> LoadedModel | None:
        """The loaded model, marked most recently used, or None."""
        if model_id not in self._models:
            return None
        self._models.move_to_end(model_id)
        return self._models[model_id]

    async def get(self, model_id: str, model_dir: Path) -> LoadedModel:
        if (model := self.cached(model_id)) is not None:
            return model
        if model_id in self._loading:
            return await asyncio.shield(self._loading[model_id])
        loading = asyncio.get_running_loop().create_future()
        self._loading[model_id] = loading
        try:
            started = time.perf_counter()
            model = await asyncio.to_thread(self._load, model_dir)
            metrics.MODEL_LOAD_SECONDS.observe(time.perf_counter() - started)
        except asyncio.CancelledError:
            loading.cancel()
            raise
        except Exception as error:
            loading.set_exception(error)
            loading.exception()  # marks it retrieved when no other request waits on it
            raise
        finally:
            del self._loading[model_id]
        self._models[model_id] = model
        while len(self._models) > self.capacity:
            self._models.popitem(last=False)
        loading.set_result(model)
        return model

    def evict(self, model_id: str) -> None:
        self._models.pop(model_id, None)

    def clear(self) -> list[LoadedModel]:
        """Empties the cache; returns what it held."""
        models = list(self._models.values())
        self._models.clear()
        return models
