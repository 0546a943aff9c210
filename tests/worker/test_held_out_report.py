"""PostgreSQL + Redis + a real `celery worker`: a finished job stores its model's held-out evaluation report, which
GET /models/{id}/evaluation returns and the job links; a model that learns nothing beyond the label counts gets a
below-majority warning on its job; the download's model card is built from the job, the data and the report."""
import io
import random
import tarfile

import pytest

from model_core.data import Example
from tests.factories import TINY_HYPERPARAMETERS, write_tsv
from tests.harness import wait_for_job


def report_warnings(job: dict) -> list[dict]:
    """The job's warnings that its model's report holds too: all but the deployment decision ("not_deployed", when
    another session's model with other labels is deployed)."""
    return [warning for warning in job["warnings"] if warning["kind"] != "not_deployed"]


def upload(client, path) -> dict:
    response = client.post("/datasets", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()


def run_job(client, dataset_id, base_model, **config) -> dict:
    response = client.post("/jobs", json={"dataset_id": dataset_id, "base_model": str(base_model),
                                          "hyperparameters": TINY_HYPERPARAMETERS, **config})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def finished(production_client, train_tsv, tiny_base_model) -> tuple[dict, dict]:
    """A job on 48 SST-2 rows with a quarter held out, and its dataset."""
    dataset = upload(production_client, train_tsv)
    return run_job(production_client, dataset["id"], tiny_base_model, eval_fraction=0.25), dataset


def test_the_job_links_the_held_out_report_of_its_model(production_client, finished):
    job, _ = finished
    assert job["evaluation_url"] == f"/models/{job['model_id']}/evaluation"
    response = production_client.get(job["evaluation_url"])
    assert response.status_code == 200, response.text
    evaluation = response.json()
    assert evaluation["model_id"] == job["model_id"] and evaluation["job_id"] == job["id"]
    assert evaluation["source"] == "held_out" and evaluation["dataset_id"] is None  # a split of the training data
    report = evaluation["report"]
    assert report["n_rows"] == 12 and sum(row["support"] for row in report["per_class"]) == 12
    assert report["metrics"]["accuracy"] == pytest.approx(job["metrics"]["eval_accuracy"])
    assert report["metrics"]["macro_f1"] == pytest.approx(job["metrics"]["eval_macro_f1"])
    assert sum(map(sum, report["confusion_matrix"])) == 12
    assert report["baselines"]["majority"]["fitted_on"] == report["baselines"]["tfidf_logreg"]["fitted_on"] == "train"
    assert report["calibration"]["temperature"] > 0 and len(report["calibration"]["reliability"]) == 10
    assert report["warnings"] == report_warnings(job)  # the data checks and the model's quality


def test_the_download_has_the_report_and_a_model_card_from_the_job(production_client, finished):
    job, dataset = finished
    response = production_client.get(f"/models/{job['model_id']}/download")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        card = archive.extractfile(f"{job['model_id']}/README.md").read().decode()
        names = set(archive.getnames())
    assert {f"{job['model_id']}/{name}" for name in ("evaluation.json", "calibration.json")} <= names
    assert dataset["sha256"] in card and f"{dataset['n_rows']} rows" in card
    assert f"base model `{job['base_model']}`" in card
    assert "| learning_rate | 0.001 |" in card and "(auto: " in card  # given and auto-chosen hyperparameters
    report = production_client.get(job["evaluation_url"]).json()["report"]
    assert f"| accuracy | {report['metrics']['accuracy']:.4f} |" in card
    assert f"{report['calibration']['ece_after']:.4f} after temperature scaling" in card


def test_a_model_no_better_than_the_majority_class_is_warned_about(production_client, tiny_base_model, tmp_path):
    rng = random.Random(0)  # 90% "common" (11 of the 12 held-out rows); the texts say nothing about the label
    rows = [Example(" ".join(rng.choices(["film", "plot", "actors", "story", "scene"], k=5)), None,
                    "rare" if i % 10 == 0 else "common") for i in range(60)]
    dataset = upload(production_client, write_tsv(tmp_path / "noise.tsv", rows))
    job = run_job(production_client, dataset["id"], tiny_base_model, eval_fraction=0.2)
    warnings = [warning for warning in job["warnings"] if warning["kind"] == "below_majority_baseline"]
    assert len(warnings) == 1 and warnings[0]["majority_accuracy"] == pytest.approx(11 / 12)
    report = production_client.get(job["evaluation_url"]).json()["report"]
    assert report["warnings"] == report_warnings(job)
    assert "small_classes" in {warning["kind"] for warning in report["warnings"]}  # a data check: "rare" has 6 rows
