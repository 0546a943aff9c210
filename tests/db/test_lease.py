"""The job lease on a real (SQLite) store: one holder at a time, stale or dead holders taken over, abandoned jobs
requeued and, after jobs.MAX_ATTEMPTS, failed with the reason."""
import subprocess
import sys

import pytest

from app.db import jobs
from app.db.jobs import JobStatus
from app.db.models import Dataset, Job
from app.db.session import make_session_factory


@pytest.fixture
def session(sqlite_settings):
    with make_session_factory(sqlite_settings.database_url)() as session:
        session.add(Dataset(id="d", name="d", filename="d.tsv", format="tsv", n_rows=2, labels={"a": 1, "b": 1},
                            label_column="label", text_column="text", sha256="0" * 64, size_bytes=1, path="/x"))
        session.add(Job(id="j", status=JobStatus.queued, dataset_id="d", base_model="minilm-l6", hyperparameters={},
                        step=0, epoch=0.0, metrics={}, cancel_requested=False, attempts=0))
        session.commit()
        yield session


def test_a_fresh_lease_is_not_taken_but_a_stale_one_is(session):
    assert jobs.try_acquire_lease(session, "j", "host-a:1", lease_seconds=60).status == "running"
    assert jobs.try_acquire_lease(session, "j", "host-b:2", lease_seconds=60) is None
    assert jobs.renew_lease(session, "j", "host-a:1") == (True, False)
    taken = jobs.try_acquire_lease(session, "j", "host-b:2", lease_seconds=0)
    assert (taken.worker_id, taken.attempts) == ("host-b:2", 2)
    assert jobs.renew_lease(session, "j", "host-a:1") == (False, False)  # a lost lease is noticed


def test_a_dead_process_on_this_host_loses_its_lease_at_once(session):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = f"{jobs.this_worker_id().rpartition(':')[0]}:{dead.stdout.strip()}"
    jobs.try_acquire_lease(session, "j", holder, lease_seconds=60)
    assert jobs.try_acquire_lease(session, "j", jobs.this_worker_id(), lease_seconds=60) is not None


def test_finished_or_cancelled_jobs_are_never_taken(session):
    session.get(Job, "j").cancel_requested = True
    session.commit()
    assert jobs.try_acquire_lease(session, "j", "host-a:1", lease_seconds=60) is None
    assert jobs.try_acquire_lease(session, "unknown", "host-a:1", lease_seconds=60) is None


def test_abandoned_job_is_requeued_then_failed_with_the_reason(session):
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        assert jobs.try_acquire_lease(session, "j", f"host-a:{attempt}", lease_seconds=60) is not None
        sent = []
        requeued = jobs.requeue_stale_jobs(session, lease_seconds=0,
                                           send=lambda job_id, kind, sent=sent: sent.append(job_id))
        job = session.get(Job, "j", populate_existing=True)
        if attempt < jobs.MAX_ATTEMPTS:
            assert requeued == sent == ["j"] and job.status == "queued" and job.worker_id is None
    assert requeued == sent == [] and job.status == "failed" and job.finished_at is not None
    assert "stopped responding" in job.error and f"{jobs.MAX_ATTEMPTS} attempts" in job.error


def test_a_job_the_broker_cannot_take_stays_running_to_be_tried_again(session):
    jobs.try_acquire_lease(session, "j", "host-a:1", lease_seconds=60)

    def broker_down(job_id: str, kind: str) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        jobs.requeue_stale_jobs(session, lease_seconds=0, send=broker_down)
    session.rollback()
    assert session.get(Job, "j", populate_existing=True).status == "running"
    assert jobs.requeue_stale_jobs(session, lease_seconds=0, send=lambda job_id, kind: None) == ["j"]


def test_embedded_restart_requeues_interrupted_jobs(session):
    jobs.try_acquire_lease(session, "j", "host-a:1", lease_seconds=60)
    assert jobs.recover_interrupted_jobs(session) == [("j", "train")]
    assert session.get(Job, "j", populate_existing=True).status == "queued"
