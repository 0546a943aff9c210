"""The job lifecycle: every change of a job's status, and the lease that says which worker runs it.

    queued --lease--> running --finish--> succeeded | failed | cancelled
      |                  |
      |                  +-- worker lost --> queued again (or failed after MAX_ATTEMPTS)
      +-- cancel / not queueable --> cancelled / failed

Routes, the reaper and the worker call these functions; nothing else writes `Job.status` or names a status
by its string. Each change is one guarded UPDATE (on the status, and on the lease holder where a worker acts),
so a change made by one process is never overwritten by another that read an older row.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.db import evaluations, store
from app.db.models import Evaluation, Job, MetricPoint, ModelRecord, utcnow
from app.errors import DeployedModelChanged, JobFinished

MAX_ATTEMPTS = 3  # deliveries of one job that may lose their worker before the job is failed
Send = Callable[[str, str], None]  # sends (job id, job kind) to the worker


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE = frozenset({JobStatus.queued, JobStatus.running})
TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


# --- created, refused, cancelled by the api --------------------------------------------------------------------------

def create(session: Session, *, name: str | None, dataset_id: str, eval_dataset_id: str | None,
           eval_fraction: float | None, base_model: str, hyperparameters: dict) -> Job:
    """A new queued job, committed (the caller then sends its message)."""
    job = Job(name=name, status=JobStatus.queued, dataset_id=dataset_id, eval_dataset_id=eval_dataset_id,
              eval_fraction=eval_fraction, base_model=base_model, hyperparameters=hyperparameters, step=0,
              epoch=0.0, metrics={}, cancel_requested=False, attempts=0)
    session.add(job)
    session.commit()
    return job


def create_evaluation(session: Session, *, model: ModelRecord, dataset_id: str) -> Job:
    """A new queued job of kind "evaluate" (`model` on the dataset `dataset_id`), committed."""
    job = Job(kind="evaluate", status=JobStatus.queued, dataset_id=dataset_id, model_id=model.id,
              base_model=model.base_model, hyperparameters={}, step=0, epoch=0.0, metrics={}, cancel_requested=False,
              attempts=0)
    session.add(job)
    session.commit()
    return job


def mark_unqueueable(session: Session, job: Job, reason: str) -> None:
    """The broker did not take the new job's message: it fails at once rather than wait for a message never sent."""
    job.status, job.error, job.finished_at = JobStatus.failed, reason, utcnow()
    session.commit()


def cancel(session: Session, job: Job) -> None:
    """A queued job is cancelled at once; a running one is asked to stop (its worker ends it). JobFinished when it
    already ended."""
    if job.status in TERMINAL:
        raise JobFinished(f"job {job.id} already {job.status}; nothing to cancel")
    session.execute(update(Job).where(Job.id == job.id, Job.status.in_(ACTIVE)).values(cancel_requested=True))
    session.execute(update(Job).where(Job.id == job.id, Job.status == JobStatus.queued)
                    .values(status=JobStatus.cancelled, finished_at=utcnow()))
    session.commit()


def active_job_reading(session: Session, dataset_id: str) -> str | None:
    """A queued or running job that trains or evaluates on the dataset, if any."""
    return session.scalars(select(Job.id).where(
        (Job.dataset_id == dataset_id) | (Job.eval_dataset_id == dataset_id), Job.status.in_(ACTIVE))).first()


def active_job_evaluating(session: Session, model_id: str) -> str | None:
    """A queued or running evaluation job of the model, if any."""
    return session.scalars(select(Job.id).where(Job.kind == "evaluate", Job.model_id == model_id,
                                                Job.status.in_(ACTIVE))).first()


def count_by_status(session: Session) -> dict[JobStatus, int]:
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status: counts.get(status, 0) for status in JobStatus}


# --- the lease -----------------------------------------------------------------------------------------------------

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
    if job is None or job.status not in ACTIVE or job.cancel_requested:
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
            status=JobStatus.running, worker_id=worker_id, heartbeat_at=now, attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now), error=None,
        )
    ).rowcount
    session.commit()
    if not taken:
        return None
    return session.get(Job, job_id, populate_existing=True)


def renew_lease(session: Session, job_id: str, worker_id: str) -> tuple[bool, bool]:
    """The heartbeat; returns (still held, cancel requested)."""
    held = session.execute(
        _held(job_id, worker_id).where(Job.status == JobStatus.running).values(heartbeat_at=utcnow())
    ).rowcount
    cancel_requested = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
    session.commit()
    return bool(held), cancel_requested


def _held(job_id: str, worker_id: str):
    """An UPDATE of the job that changes nothing once another worker has taken it over."""
    return update(Job).where(Job.id == job_id, Job.worker_id == worker_id)


# --- what the lease holder records ------------------------------------------------------------------------------------

def record_start(session: Session, job_id: str, worker_id: str, total_steps: int, device: str,
                 auto_choices: dict, warnings: list[dict]) -> None:
    """Training started: its planned steps, its device, what its "auto" hyperparameters became, and the warnings
    of the data checks of its rows (a later delivery's replace an earlier one's: they are the same)."""
    session.execute(_held(job_id, worker_id).values(total_steps=total_steps, device=device,
                                                    auto_choices=auto_choices, warnings=warnings))
    session.commit()


def record_progress(session: Session, job_id: str, worker_id: str, *, step: int, epoch: float, metrics: dict,
                    points: Iterable[MetricPoint], superseded_from: int | None = None) -> None:
    """One transaction: new metric points (after dropping those from step `superseded_from` on, which an
    interrupted delivery wrote and this one redoes) and the job's progress and latest metrics."""
    if superseded_from is not None:
        session.execute(delete(MetricPoint).where(MetricPoint.job_id == job_id, MetricPoint.step >= superseded_from))
    job = session.get(Job, job_id)
    session.add_all(points)
    session.execute(_held(job_id, worker_id).values(step=step, epoch=epoch, metrics={**job.metrics, **metrics}))
    session.commit()


def succeed(session: Session, job_id: str, worker_id: str, *, model_dir: Path, total_steps: int, epoch: float,
            metrics: dict, device: str, report: dict | None = None, deploy_detail: dict | None = None,
            warnings: Sequence[dict] = ()) -> ModelRecord | None:
    """Ends the job as succeeded and registers its model, with the model's held-out evaluation `report` (its
    warnings join the job's data checks, and the stored report shows them all), the job's further `warnings`
    (auto-deploy's) and, given `deploy_detail`, its deployment (an "auto" Deployment with that detail; a
    "not_deployed" warning instead when another model was deployed since the decision), in one transaction; None
    (nothing changed) when another worker has taken the job over."""
    job = session.get(Job, job_id, populate_existing=True)
    if job.worker_id != worker_id:
        return None
    job.status, job.step, job.total_steps, job.epoch = JobStatus.succeeded, total_steps, total_steps, epoch
    job.metrics, job.device, job.finished_at, job.worker_id = metrics, device, utcnow(), None
    record = store.register_model(session, job, model_dir)
    job.model_id = record.id
    if report is not None:  # the job and its report show both the data checks and the model's quality
        job.warnings = [*(job.warnings or []), *report["warnings"]]
        evaluations.add(session, model_id=record.id, report={**report, "warnings": job.warnings},
                        source=evaluations.HELD_OUT, dataset_id=job.eval_dataset_id, job_id=job.id)
    if warnings:
        job.warnings = [*(job.warnings or []), *warnings]
    if deploy_detail is not None:
        try:
            store.switch_deployed(session, record.id, reason="auto", detail=deploy_detail)
        except DeployedModelChanged as changed:  # another model was deployed after the decision: the job stands
            job.warnings = [*(job.warnings or []), {"kind": "not_deployed", "message": f"not deployed: {changed}",
                                                    "deployed_model_id": changed.deployed_model_id}]
    session.commit()
    return record


def succeed_evaluation(session: Session, job_id: str, worker_id: str, *, report: dict, total_steps: int,
                       metrics: dict, device: str) -> Evaluation | None:
    """Ends an evaluation job as succeeded and stores its report (source "dataset"), in one transaction; None
    (nothing changed) when another worker has taken the job over."""
    job = session.get(Job, job_id, populate_existing=True)
    if job.worker_id != worker_id:
        return None
    job.status, job.step, job.total_steps, job.metrics = JobStatus.succeeded, total_steps, total_steps, metrics
    job.device, job.finished_at, job.worker_id = device, utcnow(), None
    evaluation = evaluations.add(session, model_id=job.model_id, report=report, source=evaluations.ON_DATASET,
                                 dataset_id=job.dataset_id, job_id=job.id)
    session.commit()
    return evaluation


def fail(session: Session, job_id: str, worker_id: str, error: str) -> None:
    _end(session, job_id, worker_id, status=JobStatus.failed, error=error)


def end_cancelled(session: Session, job_id: str, worker_id: str) -> None:
    """The worker stopped the job at a cancel request."""
    _end(session, job_id, worker_id, status=JobStatus.cancelled)


def _end(session: Session, job_id: str, worker_id: str, **values) -> None:
    session.execute(_held(job_id, worker_id).values(finished_at=utcnow(), worker_id=None, **values))
    session.commit()


# --- recovery of jobs whose worker is gone ---------------------------------------------------------------------------

def _requeue_or_fail(session: Session, job: Job, reason: str, send: Send | None = None) -> bool:
    """Puts an abandoned running job back in the queue (True) or fails it after MAX_ATTEMPTS (False).

    With `send`, the job's message goes out before the row changes: if the broker is away the job stays as it
    was, to be tried again, rather than `queued` with no message (a duplicate message is harmless: the lease).
    """
    guard = (Job.id == job.id, Job.status == JobStatus.running, Job.worker_id.is_not_distinct_from(job.worker_id),
             Job.heartbeat_at.is_not_distinct_from(job.heartbeat_at))
    if job.cancel_requested:
        values = dict(status=JobStatus.cancelled, finished_at=utcnow(), worker_id=None)
    elif job.attempts >= MAX_ATTEMPTS:
        values = dict(status=JobStatus.failed, finished_at=utcnow(), worker_id=None,
                      error=f"{reason}; gave up after {job.attempts} attempts")
    else:
        values = dict(status=JobStatus.queued, worker_id=None)
        if send is not None:
            send(job.id, job.kind)
    changed = session.execute(update(Job).where(*guard).values(**values)).rowcount
    return bool(changed) and values["status"] == JobStatus.queued


def requeue_stale_jobs(session: Session, lease_seconds: float, send: Send) -> list[str]:
    """Running jobs whose worker stopped heartbeating: sent again and marked queued, or failed (ids requeued)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    stale = session.scalars(
        select(Job).where(Job.status == JobStatus.running, (Job.heartbeat_at < cutoff) | Job.heartbeat_at.is_(None))
    ).all()
    requeued = []
    for job in stale:
        reason = f"the worker running this job stopped responding (last heartbeat {_iso(job.heartbeat_at)})"
        if _requeue_or_fail(session, job, reason, send):
            requeued.append(job.id)
        session.commit()
    return requeued


def recover_interrupted_jobs(session: Session) -> list[tuple[str, str]]:
    """At start of the embedded service (whose worker is the only one): every running job was interrupted.

    Requeues them (or fails those out of attempts) and returns every queued job's (id, kind), oldest first, to send
    again.
    """
    for job in session.scalars(select(Job).where(Job.status == JobStatus.running)).all():
        _requeue_or_fail(session, job, "the service stopped while this job was running")
    session.commit()
    queued = session.execute(select(Job.id, Job.kind).where(Job.status == JobStatus.queued).order_by(Job.created_at))
    return [(job_id, kind) for job_id, kind in queued]


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "never"
