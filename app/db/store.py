"""Queries the API and the worker share: pages, the job lease, stale-job recovery, the model registry."""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Job, ModelRecord, utcnow

MAX_ATTEMPTS = 3  # deliveries of one job that may lose their worker before the job is failed


def page(session: Session, query: Select, order_by, limit: int, offset: int) -> tuple[list, int]:
    """One page of `query` (newest first by `order_by`) and the total count."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    items = session.scalars(query.order_by(order_by.desc()).limit(limit).offset(offset)).all()
    return list(items), total


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- the job lease -------------------------------------------------------------------------------------------------

def this_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(worker_id: str) -> bool:
    """True when the lease holder was a process on this host that no longer exists."""
    host, _, pid = worker_id.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def try_acquire_lease(session: Session, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
    """Takes the job for `worker_id` and marks it running; None when it must not run here.

    Refused for unknown, finished or cancel-requested jobs and for jobs whose lease is fresh (another worker is
    running it). A stale lease (no heartbeat for `lease_seconds`, or a dead process on this host) is taken over.
    The update is a compare-and-swap on the lease fields read, so two deliveries cannot both win.
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status not in ("queued", "running") or job.cancel_requested:
        return None
    now = utcnow()
    fresh = job.heartbeat_at is not None and job.heartbeat_at > now - timedelta(seconds=lease_seconds)
    if job.worker_id is not None and fresh and not _holder_is_dead(job.worker_id):
        return None
    taken = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == job.status,
            Job.worker_id.is_not_distinct_from(job.worker_id),
            Job.heartbeat_at.is_not_distinct_from(job.heartbeat_at),
        )
        .values(
            status="running", worker_id=worker_id, heartbeat_at=now, attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now), error=None,
        )
    ).rowcount
    session.commit()
    if not taken:
        return None
    return session.get(Job, job_id, populate_existing=True)


def heartbeat(session: Session, job_id: str, worker_id: str) -> tuple[bool, bool]:
    """Renews the lease; returns (still held, cancel requested)."""
    held = session.execute(
        update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running").values(heartbeat_at=utcnow())
    ).rowcount
    cancel_requested = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
    session.commit()
    return bool(held), cancel_requested


def _requeue_or_fail(session: Session, job: Job, reason: str, send: Callable[[str], None] | None = None) -> bool:
    """Puts an abandoned running job back in the queue (True) or fails it after MAX_ATTEMPTS (False).

    With `send`, the job's message goes out before the row changes: if the broker is away the job stays as it
    was, to be tried again, rather than `queued` with no message (a duplicate message is harmless: the lease).
    """
    guard = (Job.id == job.id, Job.status == "running", Job.worker_id.is_not_distinct_from(job.worker_id),
             Job.heartbeat_at.is_not_distinct_from(job.heartbeat_at))
    if job.cancel_requested:
        values = dict(status="cancelled", finished_at=utcnow(), worker_id=None)
    elif job.attempts >= MAX_ATTEMPTS:
        values = dict(status="failed", finished_at=utcnow(), worker_id=None,
                      error=f"{reason}; gave up after {job.attempts} attempts")
    else:
        values = dict(status="queued", worker_id=None)
        if send is not None:
            send(job.id)
    changed = session.execute(update(Job).where(*guard).values(**values)).rowcount
    return bool(changed) and values["status"] == "queued"


def requeue_stale_jobs(session: Session, lease_seconds: float, send: Callable[[str], None]) -> list[str]:
    """Running jobs whose worker stopped heartbeating: sent again and marked queued, or failed (ids requeued)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    stale = session.scalars(
        select(Job).where(Job.status == "running", (Job.heartbeat_at < cutoff) | Job.heartbeat_at.is_(None))
    ).all()
    requeued = []
    for job in stale:
        reason = f"the worker running this job stopped responding (last heartbeat {_iso(job.heartbeat_at)})"
        if _requeue_or_fail(session, job, reason, send):
            requeued.append(job.id)
        session.commit()
    return requeued


def recover_interrupted_jobs(session: Session) -> list[str]:
    """At start of the embedded service (whose worker is the only one): every running job was interrupted.

    Requeues them (or fails those out of attempts) and returns every queued job id, oldest first, to send again.
    """
    for job in session.scalars(select(Job).where(Job.status == "running")).all():
        _requeue_or_fail(session, job, "the service stopped while this job was running")
    session.commit()
    return list(session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.created_at)).all())


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "never"


# --- the model registry --------------------------------------------------------------------------------------------

def register_model(session: Session, job: Job, model_dir: Path) -> ModelRecord:
    """Records the HF-compatible directory ARTIFACT_DIR/models/<model_id>/ (its folder name is the id)."""
    config = json.loads((model_dir / "config.json").read_text())
    id2label = config["id2label"]
    record = ModelRecord(
        id=model_dir.name, job_id=job.id, base_model=job.base_model,
        labels=[id2label[str(i)] for i in range(len(id2label))], metrics=dict(job.metrics or {}),
        path=str(model_dir), size_bytes=directory_size(model_dir), deployed=False,
    )
    session.add(record)
    session.flush()
    return record


def deploy_model(session: Session, model_id: str) -> ModelRecord:
    """Makes `model_id` the one deployed model (others cleared in the same transaction). LookupError if unknown."""
    record = session.get(ModelRecord, model_id)
    if record is None:
        raise LookupError(f"model {model_id} not found")
    session.execute(update(ModelRecord).values(deployed=(ModelRecord.id == model_id)))
    session.commit()
    session.refresh(record)
    return record


def deployed_model(session: Session) -> ModelRecord | None:
    return session.scalars(select(ModelRecord).where(ModelRecord.deployed.is_(True))).first()
