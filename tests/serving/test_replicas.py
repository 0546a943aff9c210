"""ReplicatedModel: replica processes answer like the in-process Predictor, load errors are CheckpointErrors,
and the replicas stop once the model is no longer referenced."""
import asyncio
import gc
import multiprocessing

import pytest
import torch

from app.errors import ReplicaDied
from app.serving.replicas import ReplicatedModel
from model_core.checkpoint import CheckpointError
from model_core.predict import Predictor

INPUTS = [("a gripping, beautifully acted film", None), ("dull", None), ("the plot", "was thin")]


def test_replicas_answer_like_the_predictor_in_process(classifier_dirs):
    in_process = Predictor.load(classifier_dirs[0])
    model = ReplicatedModel(classifier_dirs[0], replicas=2, torch_threads=1)
    try:
        assert (model.labels, model.max_len) == (in_process.labels, in_process.max_len)
        encodings = model.tokenize(INPUTS)
        assert [e.ids for e in encodings] == [e.ids for e in in_process.tokenize(INPUTS)]
        probabilities = torch.from_numpy(asyncio.run(model.predict_tokenized(encodings)))
        assert torch.allclose(probabilities, in_process.predict_proba(INPUTS), atol=1e-6)
    finally:
        model.close()
    assert not any(process.is_alive() for process in model.processes)


def test_an_unloadable_model_is_a_checkpoint_error_and_leaves_no_process(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        ReplicatedModel(tmp_path, replicas=1, torch_threads=1)
    gc.collect()
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("predict-replica")]


def test_replicas_stop_when_the_model_is_dropped(classifier_dirs):
    model = ReplicatedModel(classifier_dirs[1], replicas=1, torch_threads=1)
    (process,) = model.processes
    assert process.is_alive()
    del model  # as when the cache evicts it and no request holds it
    gc.collect()
    process.join(timeout=10)
    assert not process.is_alive()


def test_every_batch_sent_to_a_dead_replica_fails_at_once(classifier_dirs):
    model = ReplicatedModel(classifier_dirs[0], replicas=1, torch_threads=1)
    (process,) = model.processes
    process.kill()
    process.join()
    encodings = model.tokenize(INPUTS)
    for _ in range(2):  # the second would wait forever for a free replica if the dead one's pipe were dropped
        with pytest.raises(ReplicaDied):
            asyncio.run(model.predict_tokenized(encodings))
    model.close()


def test_a_cancelled_batch_is_still_read_so_the_next_batch_gets_its_own_answer(classifier_dirs):
    model = ReplicatedModel(classifier_dirs[0], replicas=1, torch_threads=1)
    try:
        first, second = model.tokenize(INPUTS[:1]), model.tokenize(INPUTS[1:])
        expected = asyncio.run(model.predict_tokenized(second))

        async def cancel_one_then_predict():
            cancelled = asyncio.create_task(model.predict_tokenized(first))
            await asyncio.sleep(0)  # sent to the replica, answer not yet read
            cancelled.cancel()
            return await model.predict_tokenized(second)

        assert asyncio.run(cancel_one_then_predict()).tolist() == expected.tolist()
    finally:
        model.close()
