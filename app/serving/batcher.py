"""Dynamic batching for /predict, the text-embeddings-inference way.

Requests put their inputs on one queue; a single loop coalesces queued inputs of the same model into batches
bounded by a token budget (counted with padding: batch size x longest input) and a maximum wait, sorts each
batch by length and runs it as one forward pass on one inference thread off the event loop (the model skips
padding everywhere but attention, so splitting a batch into runs of similar length only adds per-pass cost).
Results go back to each request in its own input order. Knows nothing of HTTP or of the store: a model is
anything with `lengths` and `predict_proba`.
"""
import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Protocol

import torch

from app import metrics

TextPair = tuple[str, str | None]


class BatchModel(Protocol):
    def lengths(self, pairs: list[TextPair]) -> list[int]: ...

    def predict_proba(self, pairs: list[TextPair]) -> torch.Tensor: ...


class QueueFull(Exception):
    """More inputs are waiting than the queue may hold; the caller should retry after `retry_after_s`."""

    def __init__(self, pending: int, limit: int, retry_after_s: int):
        super().__init__(f"{pending} inputs are waiting for prediction (limit {limit}); retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Item:
    model: BatchModel
    pair: TextPair
    n_tokens: int
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, max_batch_tokens: int, max_batch_wait_s: float, max_queue_inputs: int):
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_wait_s = max_batch_wait_s
        self.max_queue_inputs = max_queue_inputs
        self.pending = 0  # inputs admitted and not yet answered (queued or in a running batch)
        self._queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._loop_task: asyncio.Task | None = None

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._batch_loop(), name="predict-batcher")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        _fail(self._queue, RuntimeError("the prediction service is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def predict(self, model: BatchModel, pairs: list[TextPair]) -> torch.Tensor:
        """Class probabilities (N, n_labels) for `pairs`, in their order. Raises QueueFull instead of waiting."""
        if self.pending + len(pairs) > self.max_queue_inputs:
            raise QueueFull(self.pending, self.max_queue_inputs, retry_after_s=1)
        self.pending += len(pairs)
        metrics.PREDICT_PENDING_INPUTS.set(self.pending)
        try:
            lengths = await asyncio.to_thread(model.lengths, pairs)
            loop = asyncio.get_running_loop()
            items = [_Item(model, pair, n, loop.create_future()) for pair, n in zip(pairs, lengths)]
            # a long request is queued shortest first, so its own batches pad little
            self._queue.extend(sorted(items, key=lambda item: item.n_tokens))
            self._arrived.set()
            return torch.stack(await asyncio.gather(*(item.future for item in items)))
        finally:
            self.pending -= len(pairs)
            metrics.PREDICT_PENDING_INPUTS.set(self.pending)

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                oldest = self._queue[0]
                await self._wait_for_more(oldest)
                batch = self._take_batch(oldest.model)
                if batch:
                    await self._run_batch(loop, oldest.model, batch)

    async def _wait_for_more(self, oldest: _Item) -> None:
        """Until the oldest input has waited max_batch_wait_s, or its model's queued inputs fill a batch."""
        deadline = oldest.enqueued_at + self.max_batch_wait_s
        while (remaining := deadline - time.perf_counter()) > 0 and not self._budget_filled(oldest.model):
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _budget_filled(self, model: BatchModel) -> bool:
        n, longest = 0, 0
        for item in self._queue:
            if item.model is model:
                n, longest = n + 1, max(longest, item.n_tokens)
                if n * longest >= self.max_batch_tokens:
                    return True
        return False

    def _take_batch(self, model: BatchModel) -> list[_Item]:
        """The queued inputs of `model`, oldest first, while batch size x longest stays within the token budget."""
        batch: list[_Item] = []
        kept: deque[_Item] = deque()
        longest = 0
        full = False
        for item in self._queue:
            if item.future.done():  # its request was cancelled (client went away)
                continue
            fits = (len(batch) + 1) * max(longest, item.n_tokens) <= self.max_batch_tokens
            if item.model is model and not full and (fits or not batch):
                batch.append(item)
                longest = max(longest, item.n_tokens)
            else:
                full = full or item.model is model
                kept.append(item)
        self._queue = kept
        return sorted(batch, key=lambda item: item.n_tokens)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, model: BatchModel, batch: list[_Item]) -> None:
        """Runs the length-sorted batch as one forward pass on the inference thread."""
        started = time.perf_counter()
        for item in batch:
            metrics.PREDICT_QUEUE_WAIT.observe(started - item.enqueued_at)
        metrics.PREDICT_BATCH_SIZE.observe(len(batch))
        metrics.PREDICT_BATCH_TOKENS.observe(len(batch) * batch[-1].n_tokens)
        try:
            probs = await loop.run_in_executor(self._executor, model.predict_proba, [item.pair for item in batch])
        except asyncio.CancelledError:
            _fail(batch, RuntimeError("the prediction service is shutting down"))
            raise
        except Exception as error:  # the model failed: every request in the batch gets the error
            _fail(batch, error)
            return
        for item, row in zip(batch, probs):
            if not item.future.done():
                item.future.set_result(row)


def _fail(items: Iterable[_Item], error: Exception) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)
