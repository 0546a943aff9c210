"""Fine-tuning jobs: create (JSON, or multipart with the files), list, inspect, follow (SSE), cancel."""
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    DEFAULT_LIMIT,
    LimitQuery,
    OffsetQuery,
    SessionDep,
    SettingsDep,
    get_dataset_or_404,
    get_job_or_404,
)
from app.auth import require_admin
from app.db import jobs, store
from app.db.jobs import JobStatus
from app.db.models import Dataset, Job, MetricPoint
from app.errors import QueueUnavailable, Unprocessable, UnsupportedMediaType
from app.schemas import JobConfig, JobCreate, JobMetricsHistory, JobOut, Page, metric_point_out
from app.settings import Settings
from app.uploads import READ_FIELDS, READ_FIELDS_SCHEMA, ColumnChoice, receive_form, store_dataset
from model_core.base_models import resolve_base_model
from model_core.config import AUTO, ConfigError, ModelConfig

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_admin)])

EVENTS_POLL_SECONDS = 0.5

# JobCreate / JobConfig are read by hand (the body is JSON or multipart), so their schemas are added to the
# OpenAPI components here and by app.main.
_, _definitions = models_json_schema([(JobCreate, "validation"), (JobConfig, "validation")],
                                     ref_template="#/components/schemas/{model}")
OPENAPI_SCHEMAS = _definitions["$defs"]
CREATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
    "multipart/form-data": {"schema": {
        "type": "object",
        "required": ["train"],
        "properties": {
            "train": {"type": "string", "format": "binary", "description": "Training file (TSV, or CSV by name)."},
            "eval": {"type": "string", "format": "binary", "description": "Optional evaluation file."},
            "config": {"type": "string", "description": "JSON of JobConfig (the JSON body without dataset ids)."},
            **READ_FIELDS_SCHEMA,
        },
    }},
}}}


def _check_base_model(config: JobConfig) -> None:
    base_dir = resolve_base_model(config.base_model)  # BaseModelNotFound: 404
    try:
        positions = ModelConfig.from_json(base_dir / "config.json").max_len
    except ConfigError as error:
        raise Unprocessable(f"base model {config.base_model!r}: {error}") from None
    max_len = config.hyperparameters.max_len
    if max_len != AUTO and max_len > positions:  # "auto" stays within the positions by its rule
        raise Unprocessable(f"hyperparameters.max_len {max_len} exceeds the {positions} positions of base model "
                            f"{config.base_model!r}")


def _check_labels(config: JobConfig, train: Dataset, eval_dataset: Dataset | None) -> None:
    if train.multi_label and config.hyperparameters.class_weighting == "balanced":
        raise Unprocessable("hyperparameters.class_weighting 'balanced' weighs the classes of single-label data; "
                            "a multi-label model tunes one threshold per label instead: use auto or none")
    if eval_dataset is None:
        too_few = [label for label, count in train.labels.items() if count < 2]
        if too_few:
            raise Unprocessable(f"cannot hold out a stratified eval_fraction: label(s) {too_few} have fewer than "
                                "2 rows; add rows or upload an eval dataset")
        return
    if eval_dataset.multi_label != train.multi_label:
        raise Unprocessable(f"the eval dataset is {_kind(eval_dataset)} but the training dataset is {_kind(train)}: "
                            "upload both with a label_delimiter (multi-label), or neither")
    unknown = [label for label in eval_dataset.labels if label not in train.labels]
    if unknown:
        raise Unprocessable(f"the eval dataset has label(s) {unknown} that the training dataset lacks")
    if (eval_dataset.text_pair_column is None) != (train.text_pair_column is None):
        raise Unprocessable("the training and eval datasets must both have a text pair column, or neither")


def _kind(dataset: Dataset) -> str:
    return f"multi-label (label_delimiter {dataset.label_delimiter!r})" if dataset.multi_label else "single-label"


def _add_job(session: Session, config: JobConfig, train: Dataset, eval_dataset: Dataset | None) -> Job:
    _check_base_model(config)
    _check_labels(config, train, eval_dataset)
    return jobs.create(session, name=config.name, dataset_id=train.id,
                       eval_dataset_id=eval_dataset.id if eval_dataset else None,
                       eval_fraction=None if eval_dataset else config.eval_fraction, base_model=config.base_model,
                       hyperparameters=config.hyperparameters.model_dump())


def enqueue(request: Request, session: Session, job: Job) -> None:
    """Sends the job (of any kind) to the worker; if the broker cannot take it, the job fails and the client gets
    503."""
    try:
        request.app.state.enqueue_job(job.id, job.kind)
    except Exception as error:  # the broker's connection errors vary by transport
        jobs.mark_unqueueable(session, job, f"could not queue the job: {error}")
        raise QueueUnavailable(f"the job queue is unavailable: {error}") from None


async def _create_from_multipart(request: Request, session: Session, settings: Settings) -> Job:
    with await receive_form(request, file_fields={"train", "eval"}, text_fields={"config", *READ_FIELDS},
                            artifact_dir=settings.artifact_dir, max_upload_mb=settings.max_upload_mb) as form:
        try:
            config = JobConfig.model_validate_json(form.fields.get("config") or "{}")
        except ValidationError as error:
            raise Unprocessable.from_validation(error) from None
        columns = ColumnChoice.from_form(form.fields)
        train = await store_dataset(session, form, "train", columns, config.name, settings.artifact_dir)
        eval_dataset = None
        if "eval" in form.files:
            eval_dataset = await store_dataset(session, form, "eval", columns, None, settings.artifact_dir)
        return _add_job(session, config, train, eval_dataset)


async def _create_from_json(request: Request, session: Session) -> Job:
    try:
        body = JobCreate.model_validate_json(await request.body())
    except ValidationError as error:
        raise Unprocessable.from_validation(error) from None
    train = get_dataset_or_404(session, body.dataset_id)
    eval_dataset = get_dataset_or_404(session, body.eval_dataset_id) if body.eval_dataset_id else None
    return _add_job(session, body, train, eval_dataset)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut, openapi_extra=CREATE_BODY,
             responses={404: {"description": "Unknown dataset or base model"}, 413: {"description": "File too big"},
                        422: {"description": "Invalid configuration or data"}})
async def create_job(request: Request, session: SessionDep, settings: SettingsDep) -> JobOut:
    """Queue a fine-tuning job: JSON (JobCreate) for uploaded datasets, or multipart to upload and queue at once."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        job = await _create_from_multipart(request, session, settings)
    elif content_type.startswith("application/json"):
        job = await _create_from_json(request, session)
    else:
        raise UnsupportedMediaType("send application/json (dataset ids) or multipart/form-data (train file, config)")
    enqueue(request, session, job)
    return JobOut.of(job)


@router.get("", response_model=Page[JobOut])
def list_jobs(session: SessionDep, status_filter: Annotated[JobStatus | None, Query(
                  alias="status", description="Only jobs in this status.")] = None,
              limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    query = select(Job) if status_filter is None else select(Job).where(Job.status == status_filter)
    items, total = store.page(session, query, Job.created_at, limit, offset)
    return {"items": [JobOut.of(job) for job in items], "total": total, "limit": limit, "offset": offset}


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep) -> JobOut:
    return JobOut.of(get_job_or_404(session, job_id))


@router.get("/{job_id}/metrics", response_model=JobMetricsHistory)
def get_job_metrics(job_id: str, session: SessionDep) -> JobMetricsHistory:
    get_job_or_404(session, job_id)
    points = session.scalars(select(MetricPoint).where(MetricPoint.job_id == job_id).order_by(MetricPoint.id)).all()
    return JobMetricsHistory(train=[metric_point_out(p) for p in points if p.kind == "train"],
                             eval=[metric_point_out(p) for p in points if p.kind == "eval"])


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses={409: {"description": "The job already finished"}})
def cancel_job(job_id: str, session: SessionDep) -> JobOut:
    """A queued job never starts; a running one stops at its next step (within seconds)."""
    jobs.cancel(session, get_job_or_404(session, job_id))
    return JobOut.of(get_job_or_404(session, job_id))


def _sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-sent events: status, progress (the job), metrics (a point)"}})
def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Status, progress and metric points as they happen; the stream ends after a terminal status."""
    session_factory = request.app.state.session_factory  # short sessions: a stream must not hold a connection
    with session_factory() as session:
        get_job_or_404(session, job_id)

    def poll(last_point_id: int) -> tuple[Job, list[MetricPoint]]:
        with session_factory() as poll_session:
            job = poll_session.get(Job, job_id)
            points = poll_session.scalars(select(MetricPoint).where(
                MetricPoint.job_id == job_id, MetricPoint.id > last_point_id).order_by(MetricPoint.id)).all()
            return job, list(points)

    async def events() -> AsyncIterator[str]:
        job, _ = await run_in_threadpool(poll, 0)
        if job.status in jobs.TERMINAL:
            yield _sse("status", JobOut.of(job).model_dump_json())
            return
        last_status, last_progress, last_point_id = None, None, 0
        while not await request.is_disconnected():
            job, points = await run_in_threadpool(poll, last_point_id)
            out = JobOut.of(job)
            for point in points:
                point_json = metric_point_out(point).model_dump(mode="json")
                yield _sse("metrics", json.dumps({"kind": point.kind, **point_json}))
                last_point_id = point.id
            if out.progress != last_progress and job.status not in jobs.TERMINAL:
                yield _sse("progress", out.model_dump_json())
                last_progress = out.progress
            if job.status != last_status:
                yield _sse("status", out.model_dump_json())
                last_status = job.status
            if job.status in jobs.TERMINAL:
                return
            await asyncio.sleep(EVENTS_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
