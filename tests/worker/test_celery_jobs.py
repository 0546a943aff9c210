"""PostgreSQL + Redis + a real `celery worker` process: jobs train, register, deploy, predict, cancel, and survive
a worker killed with SIGKILL."""
import itertools
import os
import re

import pytest

from tests.factories import TINY_HYPERPARAMETERS, topic_examples, write_tsv
from tests.harness import kill_worker_mid_job, queue_job, sse_events, upload_dataset, wait_for_job

# long enough to act on while it runs: 10 epochs of ~22 steps, a checkpoint every 10
LONG_HYPERPARAMETERS = {**TINY_HYPERPARAMETERS, "epochs": 10, "batch_size": 2, "save_steps": 10}


@pytest.fixture(scope="module")
def dataset_id(production_client, train_tsv) -> str:
    return upload_dataset(production_client, train_tsv)


def test_job_trains_registers_deploys_and_predicts(production_client, dataset_id, tiny_base_model):
    job = queue_job(production_client, dataset_id, tiny_base_model, TINY_HYPERPARAMETERS)
    with production_client.stream("GET", f"/jobs/{job['id']}/events") as stream:
        events = sse_events(stream.read().decode())
    assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded", events[-1]
    assert {"status", "progress", "metrics"} <= {name for name, _ in events}

    job = production_client.get(f"/jobs/{job['id']}").json()
    progress = job["progress"]
    assert progress["step"] == progress["total_steps"] > 0 and progress["fraction"] == 1
    assert progress["epoch"] == 2 and job["device"] == "cpu" and job["error"] is None
    assert all(value is not None for value in job["metrics"].values()), job["metrics"]

    history = production_client.get(f"/jobs/{job['id']}/metrics").json()
    assert {1.0, 2.0} <= {point["epoch"] for point in history["eval"]}  # an eval point after every epoch
    train_steps = [point["step"] for point in history["train"]]
    steps_per_epoch = progress["total_steps"] // 2
    assert train_steps[-1] == progress["total_steps"] and steps_per_epoch in train_steps
    assert all(b - a <= 10 for a, b in itertools.pairwise([0, *train_steps]))

    model = production_client.get(f"/models/{job['model_id']}").json()
    assert model["deployed"] and model["job_id"] == job["id"] and set(model["labels"]) == {"0", "1"}
    prediction = production_client.post("/predict", json={"inputs": ["a gripping film", "dull"]})
    assert prediction.status_code == 200, prediction.text
    assert prediction.json()["model"] == job["model_id"]
    assert [p["label"] in model["labels"] for p in prediction.json()["predictions"]] == [True, True]


def test_multi_label_job_trains_with_its_thresholds_and_predicts_labels(production_client, tiny_base_model,
                                                                        tmp_path):
    topics = write_tsv(tmp_path / "topics.tsv", topic_examples(40, seed=0))
    response = production_client.post("/datasets", files={"file": ("topics.tsv", topics.read_bytes())},
                                      data={"label_delimiter": ",", "allow_no_label": "true"})
    assert response.status_code == 201, response.text
    job = queue_job(production_client, response.json()["id"], tiny_base_model, {**TINY_HYPERPARAMETERS, "seed": 1})
    done = wait_for_job(production_client, job["id"])
    assert done["status"] == "succeeded", done
    evals = production_client.get(f"/jobs/{job['id']}/metrics").json()["eval"]
    # accuracy is subset accuracy, at 0.5 during training; the model's metrics are at the thresholds tuned after
    assert {1.0, 2.0} <= {point["epoch"] for point in evals}
    assert all(0 <= point[key] <= 1 for point in evals for key in ("accuracy", "macro_f1"))
    model = production_client.get(f"/models/{done['model_id']}").json()
    assert model["problem_type"] == "multi_label_classification"
    assert sorted(model["labels"]) == ["neg", "pos", "strong"]
    assert model["metrics"]["eval_macro_f1"] >= max(point["macro_f1"] for point in evals)
    assert 0 < model["metrics"]["eval_micro_f1"] <= 1
    prediction = production_client.post("/predict", json={"model": model["id"], "inputs": ["a good film", "dull"]})
    assert prediction.status_code == 200, prediction.text
    assert all(set(answer) == {"labels", "scores"} and set(answer["labels"]) <= set(model["labels"])
               for answer in prediction.json()["predictions"])


def test_an_auto_job_shows_what_auto_chose_and_keeps_what_was_given(production_client, dataset_id,
                                                                     tiny_base_model):
    job = queue_job(production_client, dataset_id, tiny_base_model, {"learning_rate": 1e-3})
    assert job["auto_choices"] is None
    done = wait_for_job(production_client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["hyperparameters"]["learning_rate"] == 1e-3 and done["hyperparameters"]["epochs"] == "auto"
    choices = done["auto_choices"]
    assert set(choices) == {"pooling", "max_len", "batch_size", "epochs", "eval_steps", "early_stopping_patience",
                            "class_weighting"}  # every "auto" field, and only those
    assert all(isinstance(choice["reason"], str) and choice["reason"] for choice in choices.values())
    assert choices["batch_size"]["value"] == 16 and choices["class_weighting"]["value"] == "none"
    assert choices["max_len"]["value"] % 8 == 0 and choices["pooling"]["value"] == "cls"
    steps_per_epoch = -(-43 // 16)  # 48 rows less the 10% held out, in batches of 16
    assert done["progress"]["total_steps"] == choices["epochs"]["value"] * steps_per_epoch


def test_each_job_runs_in_a_fresh_child_process(production_client, celery_worker, dataset_id, tiny_base_model):
    jobs = [queue_job(production_client, dataset_id, tiny_base_model, TINY_HYPERPARAMETERS) for _ in range(2)]
    for job in jobs:
        assert wait_for_job(production_client, job["id"])["status"] == "succeeded"
    log = celery_worker.log_path.read_text()
    first, second = (int(re.search(rf"job {job['id']}: attempt 1 on \S+:(\d+)", log).group(1)) for job in jobs)
    assert len({first, second, celery_worker.process.pid}) == 3
    with pytest.raises(ProcessLookupError):  # the first job's child has exited, its memory returned
        os.kill(first, 0)


def test_cancel_running_and_queued_jobs(production_client, dataset_id, tiny_base_model):
    running = queue_job(production_client, dataset_id, tiny_base_model, LONG_HYPERPARAMETERS)
    queued = queue_job(production_client, dataset_id, tiny_base_model, LONG_HYPERPARAMETERS)
    wait_for_job(production_client, running["id"], until=lambda job: job["progress"]["step"] > 0)
    assert production_client.post(f"/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    assert production_client.post(f"/jobs/{running['id']}/cancel").status_code == 202
    stopped = wait_for_job(production_client, running["id"], timeout=30)
    assert stopped["status"] == "cancelled" and stopped["model_id"] is None
    assert stopped["progress"]["step"] < stopped["progress"]["total_steps"]
    # the worker dropped the cancelled job's delivery: it never started
    after = wait_for_job(production_client, queued["id"])
    assert after["status"] == "cancelled" and after["started_at"] is None
    assert production_client.post(f"/jobs/{running['id']}/cancel").status_code == 409


def test_worker_killed_mid_job_resumes_from_its_checkpoint(production_client, celery_worker, dataset_id,
                                                           tiny_base_model):
    job = queue_job(production_client, dataset_id, tiny_base_model, LONG_HYPERPARAMETERS)
    done = kill_worker_mid_job(production_client, celery_worker, job["id"], until=lambda j: j["progress"]["step"] > 15)
    assert done["status"] == "succeeded", done
    assert done["progress"]["step"] == done["progress"]["total_steps"]
    train_steps = [point["step"] for point in production_client.get(f"/jobs/{job['id']}/metrics").json()["train"]]
    assert train_steps == sorted(set(train_steps)), "points of the lost attempt past its checkpoint are replaced"
