"""`python -m app.cli serve` with nothing configured: SQLite, filesystem broker, its own worker. A job goes from
upload to prediction, survives a SIGTERM of the whole service mid-job, and resumes from its checkpoint."""
import json
from pathlib import Path

import pytest

from testkit.processes import ServeProcess
from testkit.store import sqlite_settings_for
from tests.factories import TINY_HYPERPARAMETERS
from tests.harness import wait_for_job

SHUTDOWN_LIMIT_S = 10


def processes_using(artifact_dir: Path) -> list[int]:
    """Pids whose environment names this test's ARTIFACT_DIR (the server and its worker)."""
    marker = f"ARTIFACT_DIR={artifact_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def server(tmp_path) -> ServeProcess:
    server = ServeProcess(sqlite_settings_for(tmp_path), tmp_path / "server.log")
    yield server
    server.kill()


def test_embedded_service_trains_survives_sigterm_and_predicts(server, tiny_base_model, train_tsv):
    client = server.start()
    assert client.get("/ready").status_code == 200
    config = {"base_model": str(tiny_base_model),
              "hyperparameters": {**TINY_HYPERPARAMETERS, "epochs": 10, "batch_size": 2, "save_steps": 10}}
    response = client.post("/jobs", files={"train": ("train.tsv", train_tsv.read_bytes())},
                           data={"config": json.dumps(config)})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for_job(client, job_id, until=lambda job: job["progress"]["step"] > 15, timeout=120)

    assert server.terminate(SHUTDOWN_LIMIT_S) == 0  # within SHUTDOWN_LIMIT_S, worker included
    assert processes_using(Path(server.env["ARTIFACT_DIR"])) == []

    client = server.start()
    interrupted = client.get(f"/jobs/{job_id}").json()
    assert interrupted["status"] in ("queued", "running") and interrupted["progress"]["step"] >= 10
    done = wait_for_job(client, job_id, timeout=180)
    assert done["status"] == "succeeded", done
    assert done["progress"]["step"] == done["progress"]["total_steps"]
    prediction = client.post("/predict", json={"inputs": "a moving, funny film"})
    assert prediction.status_code == 200 and prediction.json()["model"] == done["model_id"], prediction.text
    assert server.terminate(SHUTDOWN_LIMIT_S) == 0
