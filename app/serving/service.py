"""PredictionService: which model answers a /predict request, and the batcher that runs it.

The model is the one named in the request, or the deployed one according to the store (re-read at most every
DEPLOYED_REFRESH_S, so a model the worker deploys is served without a restart). Deploying loads the new model
completely before it is flipped in the store and here: a request resolves its model once, at its start, and
finishes on it, so during a switch requests see the old or the new model, never a half-loaded one.
Store access happens in worker threads and inference in the model's replica processes; the event loop only
coordinates.

A model's decision settings (min_confidence, hand-set thresholds: PATCH /models/{id}) are read from the store
with its record and re-read at most every DEPLOYED_REFRESH_S; a PATCH through this process replaces them here at
once (`decision_changed`), so the next request decides with them.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from app.db import store
from app.db.models import ModelRecord
from app.errors import ModelNotFound, ModelUnloadable, NoModelDeployed, ReplicaDied
from app.serving.batcher import Batcher, TextPair
from app.serving.model_cache import ModelCache
from app.serving.replicas import ReplicatedModel
from app.settings import Settings
from model_core.checkpoint import CheckpointError
from model_core.predict import thresholds_over

DEPLOYED_REFRESH_S = 1.0
Result = TypeVar("Result")


@dataclass
class Prediction:
    model_id: str
    labels: list[str]
    probs: list[list[float]]  # (N, n_labels), rows in input order
    thresholds: list[float] | None  # a multi-label model's (hand-set over tuned), in label order; None: single-label
    min_confidence: float | None = None  # single-label: abstain below it


@dataclass(frozen=True)
class DecisionSettings:
    """What a model's record says about turning its probabilities into answers."""

    min_confidence: float | None
    thresholds: dict[str, float]  # multi-label: {label: threshold} set by hand, over the tuned ones

    @classmethod
    def of(cls, record: ModelRecord) -> DecisionSettings:
        return cls(record.min_confidence, dict(record.thresholds or {}))


class PredictionService:
    def __init__(self, settings: Settings, session_factory: Callable[[], Session]):
        self.settings = settings
        self._session_factory = session_factory
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on (a container's CPU set)
        self.workers = settings.predict_workers or cores
        self.torch_threads = settings.torch_threads or max(1, cores // self.workers)
        self.batcher = Batcher(settings.max_batch_tokens, settings.max_batch_wait_ms / 1000, settings.max_queue_inputs,
                               self.workers)
        self.models: ModelCache[ReplicatedModel] = ModelCache(settings.model_cache_size, self._load)
        self._deployed: tuple[str, Path] | None = None  # (id, directory) as last read from the store
        self._deployed_read_at = float("-inf")
        self._decisions: dict[str, tuple[float, DecisionSettings]] = {}  # model id -> (read at, settings)

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        for model in self.models.clear():
            model.close()

    def _load(self, model_dir: Path) -> ReplicatedModel:
        return ReplicatedModel(model_dir, self.workers, self.torch_threads, self.settings.predict_quantize)

    async def _in_store(self, query: Callable[[Session], Result]) -> Result:
        def run() -> Result:
            with self._session_factory() as session:
                return query(session)

        return await asyncio.to_thread(run)

    async def _record(self, model_id: str) -> ModelRecord:
        record = await self._in_store(lambda session: session.get(ModelRecord, model_id))
        if record is None:
            raise ModelNotFound(model_id)
        return record

    async def _deployed_model(self) -> tuple[str, Path]:
        if time.monotonic() - self._deployed_read_at > DEPLOYED_REFRESH_S:
            read_at = time.monotonic()
            record = await self._in_store(store.deployed_model)
            if read_at > self._deployed_read_at:  # a deploy here may have flipped it meanwhile
                self._deployed = (record.id, Path(record.path)) if record is not None else None
                self._deployed_read_at = read_at
        if self._deployed is None:
            raise NoModelDeployed()
        return self._deployed

    async def _model(self, model_id: str | None) -> tuple[str, ReplicatedModel]:
        if model_id is None:
            model_id, model_dir = await self._deployed_model()
        elif (model := self.models.cached(model_id)) is not None:
            return model_id, model
        else:
            model_dir = Path((await self._record(model_id)).path)
        return model_id, await self._loaded(model_id, model_dir)

    async def _loaded(self, model_id: str, model_dir: Path) -> ReplicatedModel:
        try:
            return await self.models.get(model_id, model_dir)
        except CheckpointError as error:
            raise ModelUnloadable(f"model {model_id} cannot be loaded: {error}") from error

    async def _decision(self, model_id: str) -> DecisionSettings:
        read_at, settings = self._decisions.get(model_id, (float("-inf"), None))
        if time.monotonic() - read_at > DEPLOYED_REFRESH_S:
            read_at = time.monotonic()
            settings = DecisionSettings.of(await self._record(model_id))
            self.decision_changed(model_id, settings, read_at)
        return self._decisions.get(model_id, (read_at, settings))[1]  # a PATCH's settings when one overtook

    def decision_changed(self, model_id: str, settings: DecisionSettings, read_at: float | None = None) -> None:
        """The model's decision settings as read from the store at `read_at` (now by default); an older read than
        the one kept (a request's, overtaken by a PATCH) is dropped."""
        read_at = time.monotonic() if read_at is None else read_at
        if read_at > self._decisions.get(model_id, (float("-inf"),))[0]:
            self._decisions[model_id] = (read_at, settings)

    async def predict(self, model_id: str | None, pairs: list[TextPair]) -> Prediction:
        """Raises ModelNotFound, NoModelDeployed, ModelUnloadable, PredictQueueFull or ReplicaDied."""
        model_id, model = await self._model(model_id)
        decision = await self._decision(model_id)
        try:
            probs = await self.batcher.predict(model, pairs)
        except ReplicaDied:
            if self.models.cached(model_id) is model:  # not yet replaced: the next request loads it anew
                self.models.evict(model_id)
            raise
        return Prediction(model_id, model.labels, probs, thresholds_over(model.labels, model.thresholds,
                                                                         decision.thresholds), decision.min_confidence)

    async def deploy(self, model_id: str, reason: store.DeployReason = "manual",
                     detail: dict | None = None) -> ModelRecord:
        """Loads the model fully, then makes it the deployed one in the store (store.deploy_model: the history gets
        `reason` and `detail`) and for this process."""
        model_dir = Path((await self._record(model_id)).path)
        await self._loaded(model_id, model_dir)
        record = await self._in_store(lambda session: store.deploy_model(session, model_id, reason=reason,
                                                                         detail=detail))
        self._deployed, self._deployed_read_at = (model_id, model_dir), time.monotonic()
        return record

    def forget(self, model_id: str) -> None:
        """After a model is deleted: drop it from the cache."""
        self.models.evict(model_id)
        self._decisions.pop(model_id, None)
        if self._deployed is not None and self._deployed[0] == model_id:
            self._deployed, self._deployed_read_at = None, float("-inf")
