"""Dynamic batching for /predict, the text-embeddings-inference way.

A request's inputs are tokenized once (on the event loop when small, else in a worker thread) and put on one
queue. A single loop coalesces queued inputs of the same model into batches bounded by a token budget (counted
with padding: batch size x longest input) and a maximum wait, sorts each batch by length and hands it to the
model, `workers` batches at once. The model runs the forward pass off the event loop (a ReplicatedModel, in one
of its replica processes) and is awaited, not waited on by a thread: on a CPU, one single-threaded pass per core
beats one pass spread over every core (no barrier per op, and a core lost to the HTTP layer slows one pass, not
all), so the loop starts a batch whenever a worker is free and the rest queue up meanwhile. Each request is
answered once all of its inputs are, in its own input order. Knows nothing of HTTP or of the store: a model is
anything with `tokenize` and an async `predict_tokenized`.
"""
import asyncio
import time
from collections import deque
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from app import metrics
from app.errors import PredictQueueFull

TextPair = tuple[str, str | None]
# Requests with at most this many characters are tokenized on the event loop (tens of microseconds, cheaper
# than a thread hop); longer ones in a worker thread, so a 256 x 20,000-character request never stalls the loop.
INLINE_TOKENIZE_CHARS = 4096


class BatchModel(Protocol):
    def tokenize(self, pairs: list[TextPair]) -> Sequence[Sized]: ...

    async def predict_tokenized(self, encodings: list) -> np.ndarray: ...


@dataclass
class _Request:
    model: BatchModel
    future: asyncio.Future  # set to rows once every input is answered
    rows: list[list[float] | None]
    unanswered: int


@dataclass
class _Item:
    """One input of a request."""

    request: _Request
    index: int  # position in the request's inputs
    encoding: Sized
    n_tokens: int
    enqueued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, max_batch_tokens: int, max_batch_wait_s: float, max_queue_inputs: int, workers: int = 1):
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_wait_s = max_batch_wait_s
        self.max_queue_inputs = max_queue_inputs
        self.pending = 0  # inputs admitted and not yet answered (queued or in a running batch)
        self._queue: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._free_workers = asyncio.Semaphore(workers)
        self._loop_task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # batches in a forward pass, or being answered

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._batch_loop(), name="predict-batcher")

    async def stop(self) -> None:
        tasks = [task for task in (self._loop_task, *self._running) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        _fail((item.request for item in self._queue), RuntimeError("the prediction service is shutting down"))
        self._queue.clear()

    async def predict(self, model: BatchModel, pairs: list[TextPair]) -> list[list[float]]:
        """Class probabilities, one row per pair, in their order. Raises PredictQueueFull instead of waiting."""
        if self.pending + len(pairs) > self.max_queue_inputs:
            raise PredictQueueFull(self.pending, self.max_queue_inputs, retry_after_s=1)
        self.pending += len(pairs)
        metrics.PREDICT_PENDING_INPUTS.set(self.pending)
        try:
            if sum(len(text) + len(pair or "") for text, pair in pairs) <= INLINE_TOKENIZE_CHARS:
                encodings = model.tokenize(pairs)
            else:
                encodings = await asyncio.to_thread(model.tokenize, pairs)
            request = _Request(model, asyncio.get_running_loop().create_future(), [None] * len(pairs), len(pairs))
            items = [_Item(request, index, encoding, len(encoding)) for index, encoding in enumerate(encodings)]
            # a long request is queued shortest first, so its own batches pad little
            self._queue.extend(sorted(items, key=lambda item: item.n_tokens))
            self._arrived.set()
            return await request.future
        finally:
            self.pending -= len(pairs)
            metrics.PREDICT_PENDING_INPUTS.set(self.pending)

    async def _batch_loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                await self._free_workers.acquire()
                oldest = self._queue[0]
                await self._wait_for_more(oldest)
                batch = self._take_batch(oldest.request.model)
                if batch:
                    self._start_batch(oldest.request.model, batch)
                else:  # every queued input of that model was cancelled
                    self._free_workers.release()

    async def _wait_for_more(self, oldest: _Item) -> None:
        """Until the oldest input has waited max_batch_wait_s, or its model's queued inputs fill a batch."""
        deadline = oldest.enqueued_at + self.max_batch_wait_s
        while (remaining := deadline - time.perf_counter()) > 0 and not self._budget_filled(oldest.request.model):
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _budget_filled(self, model: BatchModel) -> bool:
        n, longest = 0, 0
        for item in self._queue:
            if item.request.model is model:
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
            if item.request.future.done():  # its request was cancelled (client went away)
                continue
            fits = (len(batch) + 1) * max(longest, item.n_tokens) <= self.max_batch_tokens
            if item.request.model is model and not full and (fits or not batch):
                batch.append(item)
                longest = max(longest, item.n_tokens)
            else:
                full = full or item.request.model is model
                kept.append(item)
        self._queue = kept
        return sorted(batch, key=lambda item: item.n_tokens)

    def _start_batch(self, model: BatchModel, batch: list[_Item]) -> None:
        """Hands the length-sorted batch to the model now, in a task of its own."""
        started = time.perf_counter()
        for item in batch:
            metrics.PREDICT_QUEUE_WAIT.observe(started - item.enqueued_at)
        metrics.PREDICT_BATCH_SIZE.observe(len(batch))
        metrics.PREDICT_BATCH_TOKENS.observe(len(batch) * batch[-1].n_tokens)
        running = asyncio.create_task(self._run(model, batch))
        self._running.add(running)
        running.add_done_callback(self._running.discard)

    async def _run(self, model: BatchModel, batch: list[_Item]) -> None:
        """Each request whose inputs are now all done gets its rows. The worker is free again the moment the
        forward pass ends, before the batch's requests are answered, so the next batch starts first."""
        try:
            try:
                with metrics.PREDICT_BATCH_SECONDS.time():
                    probabilities = await model.predict_tokenized([item.encoding for item in batch])
            finally:
                self._free_workers.release()
        except asyncio.CancelledError:
            _fail((item.request for item in batch), RuntimeError("the prediction service is shutting down"))
            raise
        except Exception as error:  # the model failed: every request in the batch gets the error
            _fail((item.request for item in batch), error)
            return
        for item, row in zip(batch, probabilities.tolist(), strict=True):
            request = item.request
            request.rows[item.index] = row
            request.unanswered -= 1
            if request.unanswered == 0 and not request.future.done():
                request.future.set_result(request.rows)


def _fail(requests: Iterable[_Request], error: Exception) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_exception(error)
