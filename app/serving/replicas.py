"""A fine-tuned model served by replica processes, one per inference worker (PREDICT_WORKERS), each running
forward passes outside this process: inference never waits for the GIL the event loop holds, nor the loop for it.

This process keeps what a request needs before and after inference (the tokenizer, labels, max_len, and a
multi-label model's thresholds) and sends each batch's token ids to a free replica over a pipe; the replica answers
with the batch's probabilities (softmax, or a sigmoid per label for a multi-label model).
The event loop itself sends the batch and reads the answer once the pipe is readable, so no thread waits on a
replica.
A replica that dies fails its batch (and any later one sent to it) with ReplicaDied; the service then drops
the model and loads it anew. The replicas stop when the model is closed or garbage-collected (evicted and no
request still using it).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
import torch
from tokenizers import Encoding

from app.errors import ReplicaDied
from model_core.checkpoint import CheckpointError
from model_core.cpu import keep_freed_memory
from model_core.predict import Predictor, tokenize_pairs
from model_core.tokenization import TokenIds, Tokenizer

STOP = None  # sent to a replica: exit

def _replica_main(pipe: Connection, model_dir: str, quantize: str | None, torch_threads: int) -> None:
    """A replica: load the model, say ("ready", labels, max_len, thresholds) or ("error", message), then answer
    batches."""
    torch.set_num_threads(torch_threads)
    keep_freed_memory()
    try:
        predictor = Predictor.load(model_dir, quantize=quantize)
    except CheckpointError as error:
        pipe.send(("error", str(error)))
        return
    pipe.send(("ready", predictor.labels, predictor.max_len, predictor.thresholds))
    while (batch := pipe.recv()) is not STOP:
        pipe.send(predictor.predict_tokenized(batch).numpy())  # a tensor would travel as shared memory: 10x slower


def _stop(processes: list[BaseProcess], pipes: list[Connection]) -> None:
    for pipe in pipes:
        try:
            pipe.send(STOP)
        except OSError:  # that replica is gone already
            pass
        pipe.close()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


class ReplicatedModel:
    """The Batcher's model: `tokenize` here, `predict_tokenized` on whichever replica is free."""

    def __init__(self, model_dir: Path, replicas: int, torch_threads: int, quantize: str | None = None):
        self._reading: dict[Connection, asyncio.AbstractEventLoop] = {}  # pipes whose answer is awaited
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied threads or event loop
        self.processes: list[BaseProcess] = []
        pipes: list[Connection] = []
        for index in range(replicas):
            pipe, replica_end = context.Pipe()
            process = context.Process(target=_replica_main, name=f"predict-replica-{index}", daemon=True,
                                      args=(replica_end, str(model_dir), quantize, torch_threads))
            process.start()
            replica_end.close()
            self.processes.append(process)
            pipes.append(pipe)
        self._stop = weakref.finalize(self, _stop, self.processes, pipes)
        try:
            answers = [pipe.recv() for pipe in pipes]
        except EOFError:
            self.close()
            raise CheckpointError(f"{model_dir}: a replica process died while loading the model") from None
        if errors := [answer[1] for answer in answers if answer[0] == "error"]:
            self.close()
            raise CheckpointError(errors[0])
        _, self.labels, self.max_len, self.thresholds = answers[0]  # thresholds: None unless multi-label
        self.tokenizer = Tokenizer.from_dir(model_dir)
        self._free: asyncio.Queue[Connection] = asyncio.Queue()
        for pipe in pipes:
            self._free.put_nowait(pipe)

    def tokenize(self, pairs: list[tuple[str, str | None]]) -> list[Encoding]:
        return tokenize_pairs(self.tokenizer, pairs, self.max_len)

    async def predict_tokenized(self, encodings: Sequence[Encoding]) -> np.ndarray:
        """(N, n_labels) probabilities from a free replica, waiting for one while all are busy."""
        pipe = await self._free.get()
        try:
            pipe.send([TokenIds(encoding.ids, encoding.type_ids) for encoding in encodings])
        except OSError as error:
            self._free.put_nowait(pipe)  # a dead replica's pipe too: whoever takes it next fails at once
            raise ReplicaDied() from error
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        loop.add_reader(pipe.fileno(), self._read_answer, loop, pipe, answer)
        self._reading[pipe] = loop
        return await answer

    def _read_answer(self, loop: asyncio.AbstractEventLoop, pipe: Connection, answer: asyncio.Future) -> None:
        """The pipe is readable. Its answer is read even if nobody awaits it any more (a cancelled request), so
        the next batch sent on this pipe gets its own answer."""
        loop.remove_reader(pipe.fileno())
        del self._reading[pipe]
        try:
            probabilities = pipe.recv()
        except (EOFError, OSError):
            if not answer.done():
                answer.set_exception(ReplicaDied())
        else:
            if not answer.done():
                answer.set_result(probabilities)
        finally:
            self._free.put_nowait(pipe)

    def close(self) -> None:
        for pipe, loop in self._reading.items():
            if not loop.is_closed():
                loop.remove_reader(pipe.fileno())
        self._reading.clear()
        self._stop()
