"""Evaluation jobs on PostgreSQL + Redis + a real `celery worker`: one runs end to end (SSE, progress, the stored
report), one is cancelled, one survives a worker killed with SIGKILL; and AUTO_DEPLOY=if_better (the default)
keeps a worse model from replacing the deployed one and deploys a better one."""
import pytest

from testkit.store import register_copy
from tests.factories import (
    make_tiny_base,
    minilm_with_random_head,
    save_minilm_classifier,
    sentiment_examples,
    write_sst2,
    write_tsv,
)
from tests.harness import kill_worker_mid_job, sse_events, wait_for_job

# MiniLM takes seconds on this many rows: long enough to cancel or kill mid-way (several chunks of 256)
ROWS = 1000


@pytest.fixture(scope="module")
def minilm_model(production_client, tmp_path_factory) -> str:
    """A MiniLM classifier with a random head over SST-2's labels "0" and "1", registered (not deployed)."""
    source = save_minilm_classifier(tmp_path_factory.mktemp("minilm") / "model",
                                    minilm_with_random_head(2, seed=0, head_std=2.0), ["0", "1"], max_len=64)
    state = production_client.app.state
    return register_copy(state.session_factory, state.settings.artifact_dir, source)


def upload(client, path) -> str:
    response = client.post("/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def sst2_dataset(production_client, tmp_path_factory) -> str:
    return upload(production_client, write_sst2(tmp_path_factory.mktemp("sst2") / "dev.tsv", ROWS, seed=1))


def queue_evaluation(client, model_id: str, dataset_id: str) -> dict:
    response = client.post(f"/models/{model_id}/evaluations", json={"dataset_id": dataset_id})
    assert response.status_code == 202, response.text
    return response.json()


def evaluations_of(client, job_id: str, model_id: str) -> list[dict]:
    return [e for e in client.get(f"/models/{model_id}/evaluations").json()["items"] if e["job_id"] == job_id]


def test_evaluation_job_runs_on_the_worker_and_stores_its_report(production_client, minilm_model, sst2_dataset):
    job = queue_evaluation(production_client, minilm_model, sst2_dataset)
    assert (job["kind"], job["status"]) == ("evaluate", "queued")
    with production_client.stream("GET", f"/jobs/{job['id']}/events") as stream:
        events = sse_events(stream.read().decode())
    assert events[-1][0] == "status" and events[-1][1]["status"] == "succeeded", events[-1]
    assert "progress" in {name for name, _ in events}

    done = production_client.get(f"/jobs/{job['id']}").json()
    chunks = -(-ROWS // 256)
    assert done["progress"]["step"] == done["progress"]["total_steps"] == chunks + 1, done["progress"]
    [evaluation] = evaluations_of(production_client, job["id"], minilm_model)
    report = evaluation["report"]
    assert (evaluation["source"], evaluation["dataset_id"]) == ("dataset", sst2_dataset)
    assert report["n_rows"] == ROWS and {row["label"] for row in report["per_class"]} == {"0", "1"}
    assert sum(row["support"] for row in report["per_class"]) == ROWS
    assert done["metrics"]["eval_accuracy"] == report["metrics"]["accuracy"]
    assert production_client.get(f"/evaluations/{evaluation['id']}").json() == evaluation


def test_a_running_evaluation_job_is_cancelled_and_stores_nothing(production_client, minilm_model, sst2_dataset):
    job = queue_evaluation(production_client, minilm_model, sst2_dataset)
    wait_for_job(production_client, job["id"], until=lambda j: j["progress"]["step"] > 0)
    assert production_client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    stopped = wait_for_job(production_client, job["id"], timeout=60)
    assert stopped["status"] == "cancelled" and stopped["progress"]["step"] < stopped["progress"]["total_steps"]
    assert evaluations_of(production_client, job["id"], minilm_model) == []


def test_evaluation_job_survives_a_worker_kill(production_client, celery_worker, minilm_model, sst2_dataset):
    job = queue_evaluation(production_client, minilm_model, sst2_dataset)
    done = kill_worker_mid_job(production_client, celery_worker, job["id"],
                               until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    assert done["status"] == "succeeded", done
    assert f"job {job['id']}: attempt 2" in celery_worker.log_path.read_text()
    assert len(evaluations_of(production_client, job["id"], minilm_model)) == 1


def test_auto_deploy_if_better_keeps_a_worse_model_out_and_deploys_a_better_one(production_client,
                                                                                 tmp_path_factory):
    root = tmp_path_factory.mktemp("auto-deploy")
    base = make_tiny_base(root / "base")
    dataset = upload(production_client, write_tsv(root / "sentiment.tsv", sentiment_examples(48, seed=0)))

    def train(**hyperparameters) -> dict:
        """A job on the dataset (its held-out rows the same every time: the same seed)."""
        response = production_client.post("/jobs", json={
            "dataset_id": dataset, "base_model": str(base), "eval_fraction": 0.25,
            "hyperparameters": {"epochs": 12, "batch_size": 8, "learning_rate": 3e-3, "max_len": 16, "seed": 3,
                                **hyperparameters}})
        assert response.status_code == 202, response.text
        done = wait_for_job(production_client, response.json()["id"])
        assert done["status"] == "succeeded", done
        return production_client.get(f"/models/{done['model_id']}").json()

    good = train()
    assert production_client.post(f"/models/{good['id']}/deploy").status_code == 200
    worse = train(epochs=1, learning_rate=1e-6)  # has barely moved from its random head
    assert not production_client.get(f"/models/{worse['id']}").json()["deployed"]
    [kept_out] = [w for w in production_client.get(f"/jobs/{worse['job_id']}").json()["warnings"]
                  if w["kind"] == "not_deployed"]
    assert kept_out["deployed_model_id"] == good["id"] and "macro-F1" in kept_out["message"]
    assert production_client.get(f"/models/{good['id']}").json()["deployed"]

    assert production_client.post(f"/models/{worse['id']}/deploy").status_code == 200
    better = train()
    assert production_client.get(f"/models/{better['id']}").json()["deployed"]
    newest = production_client.get("/deployments").json()["items"][0]
    assert (newest["model_id"], newest["previous_model_id"], newest["reason"]) == (better["id"], worse["id"],
                                                                                   "auto")
    assert newest["detail"]["passed"] and newest["detail"]["comparison"]["macro_f1"]["delta"] > 0.2
