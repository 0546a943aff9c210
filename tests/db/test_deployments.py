"""Deployment switches on real stores, SQLite and a fresh PostgreSQL database: a decision made against one deployed
model does not replace another, and of two decisions made against the same model only the first wins, the other
waiting for it and then refused."""
import threading

import pytest
from sqlalchemy import select

from app.db import jobs, store
from app.db.models import Deployment, Job, ModelRecord
from app.db.session import make_session_factory
from app.errors import DeployedModelChanged
from testkit.store import new_model_dir, postgres_database

LOCK_HELD_S = 1.0  # how long the first switch holds its transaction open while the second one waits


@pytest.fixture(params=["sqlite", "postgresql"])
def session_factory(request, sqlite_settings):
    if request.param == "sqlite":
        yield make_session_factory(sqlite_settings.database_url)
        return
    with postgres_database("deployments") as url:
        factory = make_session_factory(url)
        yield factory
        factory.kw["bind"].dispose()


def add_models(session_factory, n: int) -> list[str]:
    with session_factory() as session:
        records = [ModelRecord(base_model="minilm-l6", labels=["a", "b"], path=f"/models/{i}", size_bytes=1)
                   for i in range(n)]
        session.add_all(records)
        session.commit()
        return [record.id for record in records]


def deployed(session_factory) -> tuple[str | None, list[tuple]]:
    """The deployed model and the history (model, previous model, reason)."""
    with session_factory() as session:
        model = store.deployed_model(session)
        history = [(d.model_id, d.previous_model_id, d.reason)
                   for d in session.scalars(select(Deployment).order_by(Deployment.id))]
        return (model.id if model else None), history


def test_a_decision_against_a_model_no_longer_deployed_changes_nothing(session_factory):
    a, b, c = add_models(session_factory, 3)
    with session_factory() as session:
        store.deploy_model(session, a, reason="auto", detail={"deployed_model_id": None})
        store.deploy_model(session, b, reason="manual")  # after c was compared with a
        with pytest.raises(DeployedModelChanged, match=f"compared with model {a}, but model {b} is deployed now"):
            store.deploy_model(session, c, reason="manual", detail={"deployed_model_id": a, "passed": True})
        session.rollback()
        with pytest.raises(DeployedModelChanged, match="compared with no deployed model"):
            store.deploy_model(session, c, reason="auto", detail={"deployed_model_id": None})
    assert deployed(session_factory) == (b, [(a, None, "auto"), (b, a, "manual")])


def test_of_two_decisions_against_the_same_model_the_second_waits_and_is_refused(session_factory):
    a, b, c = add_models(session_factory, 3)
    with session_factory() as session:
        store.deploy_model(session, a, reason="manual")
    second: dict = {}

    def deploy_c() -> None:
        with session_factory() as session:
            try:
                store.deploy_model(session, c, reason="manual", detail={"deployed_model_id": a})
            except DeployedModelChanged as error:
                second["refused"] = error

    with session_factory() as first:
        store.switch_deployed(first, b, reason="manual", detail={"deployed_model_id": a})
        thread = threading.Thread(target=deploy_c)
        thread.start()
        thread.join(LOCK_HELD_S)
        assert thread.is_alive()  # waiting for the first switch's lock
        first.commit()
    thread.join(30)
    assert not thread.is_alive() and second["refused"].deployed_model_id == b
    assert deployed(session_factory) == (b, [(a, None, "manual"), (b, a, "manual")])


def test_a_job_whose_auto_deploy_lost_the_race_succeeds_with_a_warning(session_factory, tmp_path):
    a, b = add_models(session_factory, 2)

    def succeed_job(session, compared_with: str) -> tuple[Job, ModelRecord]:
        model_dir = new_model_dir(tmp_path)  # its name is the model id
        model_dir.mkdir(parents=True)
        (model_dir / "config.json").write_text('{"id2label": {"0": "a", "1": "b"}}')
        job = Job(base_model="minilm-l6", status=jobs.JobStatus.running, hyperparameters={}, worker_id="host:1")
        session.add(job)
        session.commit()
        record = jobs.succeed(session, job.id, "host:1", model_dir=model_dir, total_steps=1, epoch=1.0, metrics={},
                              device="cpu", deploy_detail={"policy": "if_better", "deployed_model_id": compared_with})
        return session.get(Job, job.id, populate_existing=True), record

    with session_factory() as session:
        store.deploy_model(session, b, reason="manual")  # after the job compared its model with a
        job, record = succeed_job(session, compared_with=a)
        assert job.status == "succeeded" and not record.deployed
        assert [w["kind"] for w in job.warnings] == ["not_deployed"] and job.warnings[0]["deployed_model_id"] == b
        assert deployed(session_factory)[0] == b
        job, record = succeed_job(session, compared_with=b)
        assert job.status == "succeeded" and record.deployed and job.warnings is None
    assert deployed(session_factory)[0] == record.id
