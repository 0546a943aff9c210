"""Service benchmark: job overhead (POST /jobs -> first training step, last step -> succeeded) for the embedded
default and for Celery + Redis + PostgreSQL, each on a tiny job; upload validation throughput on SST-2 train; the
wall time of an evaluation job (POST /models/{id}/evaluations -> succeeded) of a MiniLM Banking77 classifier on
Banking77 test (3,080 rows), report and baselines included.

`python -m bench.service [--quick]` or through `bench.run`. Overheads are observed by polling GET /jobs/{id}
every POLL_S seconds (the worker records progress at a job's first step and at its last).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.db.jobs import TERMINAL
from app.db.session import make_session_factory
from app.main import create_app
from app.settings import Settings
from model_core.config import TrainConfig
from model_core.data import read_table, stratified_split
from model_core.train import finetune
from testkit.data import SHARED_DATA, SST2_TRAIN, write_sst2
from testkit.models import make_tiny_bert
from testkit.processes import ServeProcess, WorkerProcess
from testkit.store import REDIS_URL, postgres_database, register_copy, sqlite_settings_for

SECTION = "service"
POLL_S = 0.02
JOBS = 3
HYPERPARAMETERS = {"epochs": 1, "batch_size": 8, "max_len": 32}
BANKING77 = SHARED_DATA / "banking77"
# the evaluated model: MiniLM after a few steps on 2 rows per intent (its accuracy does not matter, its shape does)
BANKING77_MODEL = TrainConfig(total_steps=4, batch_size=16, max_len=64, learning_rate=1e-4)


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "metric": metric, "value": round(value, 4), "unit": unit, "note": note}


def _job_overhead(client, train_file: Path, base_model: Path) -> tuple[float, float]:
    """(POST /jobs -> first step, last step -> succeeded) seconds for one tiny job."""
    config = {"base_model": str(base_model), "hyperparameters": HYPERPARAMETERS}
    posted = time.perf_counter()
    response = client.post("/jobs", files={"train": (train_file.name, train_file.read_bytes())},
                           data={"config": json.dumps(config)})
    assert response.status_code == 202, response.text
    job_id, first_step_at, last_step_at = response.json()["id"], None, None
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        now = time.perf_counter()
        progress = job["progress"]
        if first_step_at is None and progress["step"] >= 1:
            first_step_at = now
        if last_step_at is None and progress["total_steps"] and progress["step"] == progress["total_steps"]:
            last_step_at = now
        if job["status"] in TERMINAL:
            assert job["status"] == "succeeded", job
            return first_step_at - posted, now - last_step_at
        time.sleep(POLL_S)


def _overhead_rows(label: str, client, train_file: Path, base_model: Path, jobs: int) -> list[dict]:
    _job_overhead(client, train_file, base_model)  # warm-up: first model load, imports in the worker
    runs = [_job_overhead(client, train_file, base_model) for _ in range(jobs)]
    to_first = sorted(run[0] for run in runs)[len(runs) // 2]
    to_done = sorted(run[1] for run in runs)[len(runs) // 2]
    note = f"median of {jobs} tiny jobs, polled every {POLL_S * 1000:.0f} ms"
    return [_row(f"{label}: POST /jobs -> first step", to_first, "s", note),
            _row(f"{label}: last step -> succeeded", to_done, "s", note)]


def _embedded(root: Path, train_file: Path, base_model: Path, jobs: int) -> list[dict]:
    server = ServeProcess(sqlite_settings_for(root / "embedded"), root / "embedded.log")
    try:
        client = server.start()
        return _overhead_rows("embedded (SQLite, filesystem broker)", client, train_file, base_model, jobs)
    finally:
        server.kill()


def _celery_redis(root: Path, train_file: Path, base_model: Path, jobs: int) -> list[dict]:
    with postgres_database("bench") as database_url:
        name = database_url.rpartition("/")[2]
        settings = Settings(database_url=database_url, celery_broker_url=REDIS_URL, celery_queue=f"bench-{name}",
                            artifact_dir=root / "prod", api_keys=None)
        worker = WorkerProcess(settings, root / "worker.log")
        try:
            worker.start()
            with TestClient(create_app(settings)) as client:
                return (_overhead_rows("Celery + Redis + PostgreSQL", client, train_file, base_model, jobs)
                        + _evaluation_job(root, settings, client))
        finally:
            worker.stop()


def _banking77_model(out_dir: Path) -> Path:
    """MiniLM with Banking77's 77 intents after BANKING77_MODEL's few steps; its saved directory."""
    train = read_table(BANKING77 / "train.csv").examples
    _, few = stratified_split(train, 2 * 77 / len(train), seed=0)  # 2 rows of each intent
    return finetune(few, None, "minilm-l6", out_dir, BANKING77_MODEL, device="cpu").model_dir


def _evaluation_job(root: Path, settings: Settings, client) -> list[dict]:
    """POST /models/{id}/evaluations of a registered Banking77 model on the uploaded test.csv -> succeeded."""
    model_id = register_copy(make_session_factory(settings.database_url), settings.artifact_dir,
                             _banking77_model(root / "banking77-model"))
    test = BANKING77 / "test.csv"
    uploaded = client.post("/datasets", files={"file": (test.name, test.read_bytes())})
    assert uploaded.status_code == 201, uploaded.text
    rows = uploaded.json()["n_rows"]
    posted = time.perf_counter()
    response = client.post(f"/models/{model_id}/evaluations", json={"dataset_id": uploaded.json()["id"]})
    assert response.status_code == 202, response.text
    while (job := client.get(f"/jobs/{response.json()['id']}").json())["status"] not in TERMINAL:
        time.sleep(POLL_S)
    assert job["status"] == "succeeded", job
    elapsed = time.perf_counter() - posted
    note = (f"{rows} rows of banking77/test.csv, 77 labels, MiniLM on CPU (Celery + Redis + PostgreSQL): "
            "predictions, report, calibration and the majority and TF-IDF baselines (5-fold)")
    return [_row("evaluation job, Banking77 test: POST -> succeeded", elapsed, "s", note),
            _row("evaluation job, Banking77 test: rows per second", rows / elapsed, "rows/s", note)]


def _upload_throughput(root: Path) -> list[dict]:
    content = SST2_TRAIN.read_bytes()
    with TestClient(create_app(sqlite_settings_for(root / "upload"))) as client:
        started = time.perf_counter()
        response = client.post("/datasets", files={"file": ("train.tsv", content)})
        elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    rows = response.json()["n_rows"]
    return [_row("upload + validation, SST-2 train", rows / elapsed, "rows/s",
                 f"{rows} rows, {len(content) / 2**20:.1f} MiB in {elapsed:.2f} s (POST /datasets in process)")]


def run(quick: bool) -> list[dict]:
    jobs = 1 if quick else JOBS
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        root = Path(tmp)
        base_model = make_tiny_bert(root / "tiny-bert")
        train_file = write_sst2(root / "train.tsv", 64)
        return (_upload_throughput(root) + _embedded(root, train_file, base_model, jobs)
                + _celery_redis(root, train_file, base_model, jobs))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(f"{row['metric']:<55} {row['value']:>12} {row['unit']:<7} {row['note']}")
