"""The promotion gate, the deployment history and rollback, and refused evaluations, over HTTP on a SQLite store
(the gate evaluates in the request; no worker). AUTO_DEPLOY's policies on the store, as the worker applies them.
The models: tiny classifiers trained in seconds on clean labels and on swapped ones (tests/factories.py)."""
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.db import store
from app.db.models import Dataset, Deployment, ModelRecord
from app.db.session import make_session_factory
from app.evaluation import auto_deploy, report_of
from app.gate import compare, gate
from app.settings import Settings
from model_core.data import Example, MultiLabelExample
from model_core.report import evaluate_model_dir
from testkit.store import register_copy
from tests.factories import (
    make_tiny_base,
    minilm_with_random_head,
    save_minilm_classifier,
    sentiment_examples,
    topic_examples,
    train_sentiment_model,
    write_tsv,
)

HELD_OUT = sentiment_examples(16, seed=1)  # what train_sentiment_model evaluates on


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """{"clean": ..., "corrupted": ...} model directories."""
    root = tmp_path_factory.mktemp("gate-models")
    tiny_base = make_tiny_base(root / "base")
    return {name: train_sentiment_model(tiny_base, root / name, corrupted=name == "corrupted")
            for name in ("clean", "corrupted")}


def register(client, source: Path) -> str:
    return register_copy(client.app.state.session_factory, client.app.state.settings.artifact_dir, source)


def upload(client, path: Path, **form) -> str:
    response = client.post("/datasets", files={"file": (path.name, path.read_bytes())}, data=form)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def clean_data(client, tmp_path) -> str:
    return upload(client, write_tsv(tmp_path / "clean.tsv", sentiment_examples(40, seed=2)))


def deploy(client, model_id: str, **gate):
    return client.post(f"/models/{model_id}/deploy", json=gate or None)


def deployments(client) -> list[dict]:
    return client.get("/deployments").json()["items"]


def test_gate_refuses_a_worse_model_and_accepts_a_better_one(client, trained, clean_data):
    clean, corrupted = register(client, trained["clean"]), register(client, trained["corrupted"])
    assert deploy(client, corrupted).status_code == 200

    accepted = deploy(client, clean, require_better_than_deployed=True, on_dataset=clean_data)
    assert accepted.status_code == 200 and accepted.json()["deployed"], accepted.text
    newest, first = deployments(client)
    assert (first["model_id"], first["previous_model_id"], first["reason"], first["detail"]) == (
        corrupted, None, "manual", None)
    assert (newest["model_id"], newest["previous_model_id"], newest["reason"]) == (clean, corrupted, "manual")
    assert newest["detail"]["passed"] and newest["detail"]["comparison"]["macro_f1"]["delta"] > 0.5

    refused = deploy(client, corrupted, require_better_than_deployed=True, on_dataset=clean_data,
                     max_class_drop=0.05)
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert not detail["passed"] and "macro-F1" in detail["reasons"][0]
    per_class = {row["label"]: row for row in detail["comparison"]["per_class"]}
    assert set(per_class) == {"pos", "neg"} and all(row["f1"]["delta"] < -0.05 for row in per_class.values())
    assert all(row["support"] == 20 for row in per_class.values())
    assert client.get(f"/models/{clean}").json()["deployed"] and len(deployments(client)) == 2

    # each model was evaluated once on the dataset, and the second gate reused both reports
    evaluations = {model: client.get(f"/models/{model}/evaluations").json() for model in (clean, corrupted)}
    assert [page["total"] for page in evaluations.values()] == [1, 1]
    clean_eval, corrupted_eval = (evaluations[model]["items"][0] for model in (clean, corrupted))
    assert clean_eval["source"] == "dataset" and clean_eval["dataset_id"] == clean_data
    assert clean_eval["job_id"] is None and clean_eval["report"]["n_rows"] == 40
    assert (detail["deployed_evaluation_id"], detail["candidate_evaluation_id"]) == (clean_eval["id"],
                                                                                     corrupted_eval["id"])

    compared = client.get("/evaluations/compare", params={"a": corrupted_eval["id"], "b": clean_eval["id"]})
    assert compared.status_code == 200, compared.text
    body = compared.json()
    macro = body["macro_f1"]
    assert macro["a"] == corrupted_eval["report"]["metrics"]["macro_f1"]
    assert macro["delta"] == pytest.approx(macro["b"] - macro["a"]) and macro["delta"] > 0.5
    assert {row["label"] for row in body["per_class"]} == {"pos", "neg"} and body["a"]["id"] == corrupted_eval["id"]


def test_rollback_redeploys_the_previous_model_and_the_history_records_it(client, trained):
    assert client.post("/deployments/rollback").status_code == 409  # nothing deployed
    first, second = register(client, trained["clean"]), register(client, trained["corrupted"])
    assert deploy(client, first).status_code == 200
    assert client.post("/deployments/rollback").status_code == 409  # nothing before it
    assert deploy(client, second).status_code == 200
    assert deploy(client, second).status_code == 200  # the deployed model again: no new deployment

    rolled_back = client.post("/deployments/rollback")
    assert rolled_back.status_code == 200 and rolled_back.json()["id"] == first, rolled_back.text
    assert client.post("/predict", json={"inputs": "good"}).json()["model"] == first
    history = deployments(client)
    assert [(d["model_id"], d["previous_model_id"], d["reason"]) for d in history] == [
        (first, second, "rollback"), (second, first, "manual"), (first, None, "manual")]
    assert client.post("/deployments/rollback").json()["id"] == second  # a second rollback undoes the first
    page = client.get("/deployments", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 1, 1) and page["items"][0]["reason"] == "rollback"


def test_refused_evaluations_and_gates_store_nothing(client, trained, clean_data, tmp_path):
    model = register(client, trained["clean"])
    assert deploy(client, model).status_code == 200
    other = register(client, trained["corrupted"])
    extra_label = upload(client, write_tsv(tmp_path / "extra.tsv", sentiment_examples(6, seed=3) + [
        Example("meh film", None, "meh")]))
    multi_label = upload(client, write_tsv(tmp_path / "topics.tsv", topic_examples(12, seed=0)),
                         label_delimiter=",", allow_no_label="true")
    gone = upload(client, write_tsv(tmp_path / "gone.tsv", sentiment_examples(6, seed=4)))
    with client.app.state.session_factory() as session:
        Path(session.get(Dataset, gone).path).unlink()

    def evaluate(model_id: str, dataset_id: str):
        return client.post(f"/models/{model_id}/evaluations", json={"dataset_id": dataset_id})

    assert evaluate("nope", clean_data).status_code == 404
    assert evaluate(model, "nope").status_code == 404
    refused = evaluate(model, extra_label)
    assert refused.status_code == 422 and "'meh'" in refused.json()["detail"], refused.text
    refused = evaluate(model, multi_label)
    assert refused.status_code == 422 and "multi-label" in refused.json()["detail"], refused.text
    refused = evaluate(model, gone)
    assert refused.status_code == 409 and "deleted" in refused.json()["detail"], refused.text
    assert {job["kind"] for job in client.get("/jobs").json()["items"]} == {"train"}  # the registered models' only

    gate = {"require_better_than_deployed": True}
    assert deploy(client, other, **gate).status_code == 422  # no on_dataset
    assert deploy(client, other, on_dataset=clean_data).status_code == 422  # a dataset but no gate
    assert deploy(client, other, **gate, on_dataset="nope").status_code == 404
    assert deploy(client, other, **gate, on_dataset=extra_label).status_code == 422
    assert deploy(client, other, **gate, on_dataset=gone).status_code == 409
    assert deploy(client, other, **gate, on_dataset=clean_data, max_class_drop=2).status_code == 422
    assert client.get("/evaluations/compare", params={"a": "x", "b": "y"}).status_code == 404
    assert client.get("/evaluations/nope").status_code == 404

    assert [d["model_id"] for d in deployments(client)] == [model]
    assert client.get(f"/models/{other}/evaluations").json()["total"] == 0


def test_an_evaluation_job_is_queued_with_its_kind_and_cancels_like_any(client, trained, clean_data):
    model = register(client, trained["clean"])
    response = client.post(f"/models/{model}/evaluations", json={"dataset_id": clean_data})
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["status"], job["model_id"], job["dataset_id"]) == ("evaluate", "queued", model,
                                                                                clean_data)
    assert job["hyperparameters"] is None and client.get(f"/jobs/{job['id']}").json() == job
    assert client.delete(f"/models/{model}").status_code == 409  # its evaluation is not finished
    assert client.delete(f"/datasets/{clean_data}").status_code == 409
    assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/models/{model}/evaluations", json={"dataset": clean_data}).status_code == 422


def test_auto_deploy_policies(sqlite_settings, trained):
    """app.evaluation.auto_deploy's decisions, each applied as the worker's jobs.succeed applies it."""
    session_factory = make_session_factory(sqlite_settings.database_url)
    clean, corrupted = (register_copy(session_factory, sqlite_settings.artifact_dir, trained[name])
                        for name in ("clean", "corrupted"))
    reports = {model: evaluate_model_dir(sqlite_settings.artifact_dir / "models" / model, HELD_OUT)
               for model in (clean, corrupted)}

    def run(model: str, policy: str, report: dict | None = None) -> str:
        with session_factory() as session:
            decided = auto_deploy(session, report or reports[model], HELD_OUT, "job-1",
                                  sqlite_settings.model_copy(update={"auto_deploy": policy}))
            if decided.detail is not None:
                store.deploy_model(session, model, reason="auto", detail=decided.detail)
            assert (decided.warning is not None) == decided.outcome.startswith("not deployed over")
            return decided.outcome

    def history() -> list[tuple]:
        with session_factory() as session:
            return [(d.model_id, d.previous_model_id, d.reason, d.detail) for d in
                    session.scalars(select(Deployment).order_by(Deployment.id))]

    assert run(corrupted, "never").startswith("not deployed") and history() == []
    assert run(corrupted, "first") == "deployed: no model was"
    assert history() == [(corrupted, None, "auto", {"policy": "first", "deployed_model_id": None})]
    assert run(clean, "first").startswith("not deployed") and len(history()) == 1
    other_labels = {**reports[clean], "labels": ["positive", "negative"]}
    assert "labels differ" in run(clean, "if_better", other_labels) and len(history()) == 1

    assert run(clean, "if_better").startswith("deployed over")
    model_id, previous, reason, detail = history()[-1]
    assert (model_id, previous, reason) == (clean, corrupted, "auto")
    assert detail["passed"] and detail["comparison"]["macro_f1"]["delta"] > 0.5
    assert detail["compared_on"] == "the 16 held-out rows of job job-1"
    refused = run(corrupted, "if_better")
    assert refused.startswith(f"not deployed over model {clean}") and "macro-F1" in refused and len(history()) == 2

    with pytest.raises(ValidationError, match="auto_deploy"):
        Settings(auto_deploy="sometimes")


def report_with(macro_f1: float, f1: dict[str, float]) -> dict:
    """The parts of a report the gate reads."""
    return {"metrics": {"accuracy": macro_f1, "macro_f1": macro_f1},
            "per_class": [{"label": label, "precision": value, "recall": value, "f1": value, "support": 5}
                          for label, value in f1.items()]}


def test_gate_rules_at_their_edges():
    deployed = report_with(0.8, {"a": 0.9, "b": 0.7})
    assert gate(deployed, report_with(0.8, {"a": 0.9, "b": 0.7}))["passed"]  # as good passes
    assert gate(deployed, report_with(0.85, {"a": 1.0, "b": 0.65}), max_class_drop=0.05)["passed"]  # drop == limit
    over = gate(deployed, report_with(0.85, {"a": 1.0, "b": 0.64}), max_class_drop=0.05)
    assert not over["passed"] and over["reasons"] == [
        "class 'b': F1 0.6400 is 0.0600 below the deployed model's 0.7000, more than max_class_drop 0.05"]
    lower = gate(deployed, report_with(0.79, {"a": 0.9, "b": 0.7}))
    assert not lower["passed"] and lower["reasons"] == ["macro-F1 0.7900 is lower than the deployed model's 0.8000"]
    extra = compare(deployed, report_with(0.8, {"a": 0.9, "b": 0.7, "c": 0.5}))["per_class"][-1]
    assert extra == {"label": "c", "support": 5, **{name: {"a": None, "b": 0.5, "delta": None}
                                                    for name in ("precision", "recall", "f1")}}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/models/m/deploy", b'{"require_better_than_deployed": true, "on_dataset": "d", "max_class_drop": NaN}'),
    ("PATCH", "/models/m", b'{"min_confidence": Infinity}'),
])
def test_a_non_finite_number_in_a_body_is_a_422(client, method, path, body):
    # Python's JSON parser reads NaN and Infinity; the 422 that echoes them must still be JSON
    response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["input"] in ("nan", "inf")


def test_a_multi_label_model_is_evaluated_with_its_hand_set_thresholds(tmp_path):
    # the gate (and evaluation jobs) judge the decisions /predict makes: hand-set thresholds over the tuned ones
    labels = ["joy", "anger"]
    model_dir = save_minilm_classifier(tmp_path / "model", minilm_with_random_head(2, seed=0, head_std=0.02), labels,
                                       32, thresholds={"joy": 0.5, "anger": 0.5})
    record = ModelRecord(id="m", path=str(model_dir), thresholds={"joy": 0.0})
    report = report_of(record, [MultiLabelExample("a text", None, ("joy",))] * 2, "cpu")
    assert report["thresholds"] == {"joy": 0.0, "anger": 0.5}
