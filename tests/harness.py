"""Helpers of the tests that drive the service through its API: polling a job, reading an event stream, listing
what the store kept. What the benchmarks use as well lives in testkit/; the factories in tests/factories.py."""
from __future__ import annotations

import json
import time
from pathlib import Path

from app.settings import Settings

TERMINAL = ("succeeded", "failed", "cancelled")


def stored_files(settings: Settings) -> list[Path]:
    """Every file under the artifact dir except the broker's folder."""
    root = settings.artifact_dir
    return [p for p in root.rglob("*") if p.is_file() and "broker" not in p.relative_to(root).parts]


def wait_for_job(client, job_id: str, statuses=TERMINAL, timeout: float = 120, until=None) -> dict:
    """Polls GET /jobs/{id} until its status is in `statuses` (or `until(job)` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if (until(job) if until else job["status"] in statuses):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.2)


def kill_worker_mid_job(client, worker, job_id: str, until, timeout: float = 180) -> dict:
    """Once `until(job)` holds, SIGKILLs the whole worker (the job stays running: nobody ended it), starts it again
    and returns the job when it has ended, its stale lease taken over by the new worker."""
    wait_for_job(client, job_id, until=until, timeout=120)
    worker.kill()
    assert client.get(f"/jobs/{job_id}").json()["status"] == "running"
    worker.start()
    return wait_for_job(client, job_id, timeout=timeout)


def upload_dataset(client, path: Path) -> str:
    """POST /datasets with the file at `path`; the dataset's id."""
    response = client.post("/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def queue_job(client, dataset_id: str, base_model, hyperparameters: dict) -> dict:
    """POST /jobs (JSON) on an uploaded dataset; the job object."""
    response = client.post("/jobs", json={"dataset_id": dataset_id, "base_model": str(base_model),
                                          "hyperparameters": hyperparameters})
    assert response.status_code == 202, response.text
    return response.json()


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events
