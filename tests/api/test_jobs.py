"""POST/GET /jobs, metrics, events and cancel through the app on SQLite, with no worker (jobs stay queued)."""
import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.factories import TINY_HYPERPARAMETERS
from tests.harness import sse_events, stored_files

JOB_FIELDS = {"id", "name", "kind", "status", "dataset_id", "eval_dataset_id", "base_model", "hyperparameters",
              "auto_choices", "progress", "metrics", "model_id", "error", "created_at", "started_at", "finished_at",
              "device", "warnings", "evaluation_url"}
TWO_LABELS = b"label\ttext\na\tx\na\ty\nb\tz\nb\tw\n"


@pytest.fixture
def dataset_id(client, train_tsv) -> str:
    return client.post("/datasets", files={"file": ("train.tsv", train_tsv.read_bytes())}).json()["id"]


@pytest.fixture
def job_body(dataset_id, tiny_base_model) -> dict:
    return {"dataset_id": dataset_id, "base_model": str(tiny_base_model), "hyperparameters": TINY_HYPERPARAMETERS}


def test_create_returns_the_queued_job_with_defaults_filled(client, job_body):
    response = client.post("/jobs", json={**job_body, "name": "first"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert set(job) == JOB_FIELDS
    assert (job["kind"], job["status"], job["name"], job["eval_dataset_id"], job["model_id"]) == (
        "train", "queued", "first", None, None)
    assert job["hyperparameters"] == {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.1,
                                      "weight_decay": 0.01, "max_len": 32, "seed": 42, "save_steps": 500,
                                      "total_steps": None, "grad_clip": 1.0, "eval_steps": "auto",
                                      "early_stopping_patience": "auto", "pooling": "auto",
                                      "class_weighting": "auto", "dedupe": False}
    assert job["auto_choices"] is None and job["warnings"] is None  # until a worker starts it
    assert job["progress"] == {"step": 0, "total_steps": None, "epoch": 0.0, "fraction": 0.0}
    assert set(job["metrics"]) == {"train_loss", "eval_loss", "eval_accuracy", "eval_macro_f1"}
    assert client.get(f"/jobs/{job['id']}").json() == job
    assert client.get(f"/jobs/{job['id']}/metrics").json() == {"train": [], "eval": []}


@pytest.mark.parametrize("change", [
    {"hyperparameters": {"epochs": 0}}, {"hyperparameters": {"batch_size": 0}},
    {"hyperparameters": {"learning_rate": 0}}, {"hyperparameters": {"warmup_ratio": 1}},
    {"hyperparameters": {"max_len": 4}}, {"hyperparameters": {"learning_rte": 1e-4}},
    {"eval_fraction": 0}, {"eval_fraction": 0.6}, {"colour": "red"}, {"hyperparameters": {"epochs": "many"}},
    {"hyperparameters": {"max_len": 128}},  # over the tiny base model's 64 positions
    {"hyperparameters": {"pooling": "max"}},
], ids=lambda change: json.dumps(change))
def test_invalid_config_is_422_and_stores_nothing(client, job_body, change):
    body = {**job_body, **change}
    if "hyperparameters" in change:
        body["hyperparameters"] = {**TINY_HYPERPARAMETERS, **change["hyperparameters"]}
    response = client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert client.get("/jobs").json()["total"] == 0


def test_a_job_with_only_the_dataset_is_all_auto(client, dataset_id):
    response = client.post("/jobs", json={"dataset_id": dataset_id})
    assert response.status_code == 202, response.text
    hyperparameters = response.json()["hyperparameters"]
    assert [name for name, value in hyperparameters.items() if value == "auto"] == [
        "epochs", "batch_size", "learning_rate", "max_len", "eval_steps", "early_stopping_patience", "pooling",
        "class_weighting"]


@pytest.mark.parametrize("field, value, allowed", [
    ("epochs", "Auto", "'auto' or an integer 1..100"),
    ("max_len", "automatic", "'auto' or an integer 8..512"),
    ("learning_rate", "AUTO", "'auto' or a number in (0, 1]"),
    ("eval_steps", "auto ", "'auto', null or an integer >= 1"),
    ("pooling", "max", "'auto', 'cls' or 'mean'"),
    ("class_weighting", "inverse", "'auto', 'none' or 'balanced'"),
])
def test_a_misspelled_choice_is_a_422_naming_the_field_and_the_allowed_values(client, job_body, field, value,
                                                                             allowed):
    response = client.post("/jobs", json={**job_body, "hyperparameters": {field: value}})
    assert response.status_code == 422, response.text
    assert [(error["loc"], error["msg"]) for error in response.json()["detail"]] == [
        (["hyperparameters", field], f"Input should be {allowed}")]
    assert client.get("/jobs").json()["total"] == 0


def test_unknown_dataset_or_base_model_is_404(client, job_body):
    for change, named in [({"dataset_id": "nope"}, "nope"), ({"eval_dataset_id": "nope2"}, "nope2"),
                          ({"base_model": "bert-huge"}, "minilm-l6")]:
        response = client.post("/jobs", json={**job_body, **change})
        assert response.status_code == 404 and named in response.json()["detail"], response.text
    assert client.post("/jobs", content=b"dataset_id=x").status_code == 415
    assert client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/jobs").json()["total"] == 0


def test_eval_labels_missing_from_train_and_unsplittable_labels_are_422(client, job_body):
    other = client.post("/datasets", files={"file": ("e.tsv", b"label\tsentence\n0\tx\nweird\ty\n")}).json()["id"]
    response = client.post("/jobs", json={**job_body, "eval_dataset_id": other})
    assert response.status_code == 422 and "'weird'" in response.json()["detail"]
    lonely = client.post("/datasets", files={"file": ("t.tsv", b"label\ttext\na\tx\na\ty\nb\tz\n")}).json()["id"]
    response = client.post("/jobs", json={**job_body, "dataset_id": lonely})
    assert response.status_code == 422 and "['b']" in response.json()["detail"]


MULTI_TRAIN = b"label\ttext\njoy,love\tx\njoy\ty\nanger\tz\nanger,joy\tw\nlove\tv\n"


def test_multi_label_job_needs_an_eval_dataset_of_its_kind_with_its_labels(client, job_body):
    def dataset(content: bytes, **form) -> str:
        response = client.post("/datasets", files={"file": ("d.tsv", content)}, data=form)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    multi = dataset(MULTI_TRAIN, label_delimiter=",")
    response = client.post("/jobs", json={**job_body, "dataset_id": multi, "eval_dataset_id": job_body["dataset_id"]})
    assert response.status_code == 422
    assert response.json()["detail"] == ("the eval dataset is single-label but the training dataset is multi-label "
                                         "(label_delimiter ','): upload both with a label_delimiter (multi-label), "
                                         "or neither")
    response = client.post("/jobs", json={**job_body, "eval_dataset_id": dataset(MULTI_TRAIN, label_delimiter=",")})
    assert response.status_code == 422 and "the eval dataset is multi-label" in response.json()["detail"]
    unseen = dataset(b"label\ttext\njoy\tx\nfear,love\ty\n", label_delimiter=",")
    response = client.post("/jobs", json={**job_body, "dataset_id": multi, "eval_dataset_id": unseen})
    assert response.status_code == 422 and "['fear']" in response.json()["detail"]
    balanced = {**job_body["hyperparameters"], "class_weighting": "balanced"}
    response = client.post("/jobs", json={**job_body, "dataset_id": multi, "hyperparameters": balanced})
    assert response.status_code == 422 and "one threshold per label" in response.json()["detail"]
    lonely = dataset(b"label\ttext\njoy,fear\tx\njoy\ty\n", label_delimiter=",")
    response = client.post("/jobs", json={**job_body, "dataset_id": lonely})  # fear: too few rows to hold one out
    assert response.status_code == 422 and "['fear']" in response.json()["detail"]
    assert client.get("/jobs").json()["total"] == 0
    response = client.post("/jobs", json={**job_body, "dataset_id": multi, "eval_dataset_id": multi})
    assert response.status_code == 202, response.text


def test_multipart_multi_label_job_reads_both_files_with_the_delimiter(client, tiny_base_model):
    config = {"base_model": str(tiny_base_model), "hyperparameters": TINY_HYPERPARAMETERS}
    response = client.post("/jobs", files={"train": ("t.tsv", MULTI_TRAIN), "eval": ("e.tsv", b"label\ttext\n"
                           b"love,joy\tx\nanger\ty\n")}, data={"config": json.dumps(config), "label_delimiter": ","})
    assert response.status_code == 202, response.text
    datasets = client.get("/datasets").json()["items"]
    assert [d["multi_label"] for d in datasets] == [True, True]
    assert [d["labels"] for d in datasets] == [{"love": 1, "joy": 1, "anger": 1}, {"joy": 3, "love": 2, "anger": 2}]


def test_multipart_uploads_and_queues_in_one_call(client, tiny_base_model, train_tsv):
    config = {"base_model": str(tiny_base_model), "name": "one-call", "hyperparameters": TINY_HYPERPARAMETERS}
    response = client.post("/jobs", files={"train": ("t.tsv", train_tsv.read_bytes()), "eval": ("e.tsv", TWO_LABELS
                           .replace(b"a\t", b"0\t").replace(b"b\t", b"1\t"))}, data={"config": json.dumps(config)})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["name"] == "one-call" and job["eval_dataset_id"] and job["base_model"] == str(tiny_base_model)
    assert client.get("/datasets").json()["total"] == 2


@pytest.mark.parametrize("files, config, status", [
    ({"train": ("t.tsv", TWO_LABELS)}, "{not json", 422),
    ({"train": ("t.tsv", TWO_LABELS)}, json.dumps({"hyperparameters": {"learning_rte": 1}}), 422),
    ({"train": ("t.tsv", TWO_LABELS)}, json.dumps({"dataset_id": "x"}), 422),
    ({"train": ("t.tsv", b"label\ttext\na\tx\nb\ty\tz\n")}, "{}", 422),
    ({"train": ("t.tsv", TWO_LABELS), "eval": ("e.tsv", b"label\ttext\nc\tx\nd\ty\n")}, "{}", 422),
    ({"train": ("t.tsv", TWO_LABELS)}, json.dumps({"base_model": "bert-huge"}), 404),
    ({"eval": ("e.tsv", TWO_LABELS)}, "{}", 422),
], ids=["bad json", "typo", "dataset id", "bad file", "eval labels", "base model", "no train"])
def test_bad_multipart_job_is_4xx_and_stores_nothing(client, sqlite_settings, files, config, status):
    response = client.post("/jobs", files=files, data={"config": config})
    assert response.status_code == status, response.text
    assert client.get("/datasets").json()["total"] == 0 and client.get("/jobs").json()["total"] == 0
    assert stored_files(sqlite_settings) == []


def test_multipart_job_over_max_upload_mb_is_413(tmp_path, train_tsv):
    from testkit.store import sqlite_settings_for

    settings = sqlite_settings_for(tmp_path, max_upload_mb=0.001)
    with TestClient(create_app(settings)) as small_client:
        response = small_client.post("/jobs", files={"train": ("t.tsv", train_tsv.read_bytes())})
        assert response.status_code == 413, response.text
        assert small_client.get("/datasets").json()["total"] == 0
    assert stored_files(settings) == []


def test_list_filters_by_status_and_pages_newest_first(client, job_body):
    ids = [client.post("/jobs", json=job_body).json()["id"] for _ in range(3)]
    assert client.post(f"/jobs/{ids[0]}/cancel").status_code == 202
    queued = client.get("/jobs", params={"status": "queued"}).json()
    assert queued["total"] == 2 and [j["id"] for j in queued["items"]] == ids[:0:-1]
    assert [j["id"] for j in client.get("/jobs", params={"status": "cancelled"}).json()["items"]] == ids[:1]
    page = client.get("/jobs", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"], page["items"][0]["id"]) == (3, 1, 1, ids[1])
    for bad in ({"status": "done"}, {"limit": 0}, {"limit": 500}, {"offset": -1}):
        assert client.get("/jobs", params=bad).status_code == 422


def test_cancel_queued_job_then_cancel_again_is_409(client, job_body):
    job_id = client.post("/jobs", json=job_body).json()["id"]
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert response.json()["finished_at"]
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    events = sse_events(client.get(f"/jobs/{job_id}/events").text)
    assert [(name, data["status"]) for name, data in events] == [("status", "cancelled")]


def test_unknown_job_is_404_everywhere(client):
    for method, path in [("get", "/jobs/nope"), ("get", "/jobs/nope/metrics"), ("get", "/jobs/nope/events"),
                         ("post", "/jobs/nope/cancel")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_jobs_survive_an_api_restart(sqlite_settings, job_body):
    with TestClient(create_app(sqlite_settings)) as first:
        dataset = first.post("/datasets", files={"file": ("t.tsv", TWO_LABELS)}).json()["id"]
        job = first.post("/jobs", json={**job_body, "dataset_id": dataset}).json()
    with TestClient(create_app(sqlite_settings)) as second:
        assert second.get(f"/jobs/{job['id']}").json() == job
        assert second.get("/jobs").json()["total"] == 1
