"""FastAPI dependencies and the lookups every route shares: the store session, the app's settings, the
prediction service, page parameters, and stored rows by id (a missing one is a NotFound: 404)."""
from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from app.db.models import Dataset, Evaluation, Job, ModelRecord
from app.errors import DatasetNotFound, EvaluationNotFound, JobNotFound, ModelNotFound, NotFound
from app.schemas import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from app.serving.service import PredictionService
from app.settings import Settings

Row = TypeVar("Row")


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def prediction_service(request: Request) -> PredictionService:  # async: no threadpool hop
    return request.app.state.prediction_service


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
ServiceDep = Annotated[PredictionService, Depends(prediction_service)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description=f"Page size, at most {MAX_PAGE_LIMIT}.")]
OffsetQuery = Annotated[int, Query(ge=0, description="Items to skip.")]
DEFAULT_LIMIT = DEFAULT_PAGE_LIMIT


def _stored(session: Session, table: type[Row], key: str, missing: type[NotFound]) -> Row:
    row = session.get(table, key, populate_existing=True)
    if row is None:
        raise missing(key)
    return row


def get_dataset_or_404(session: Session, dataset_id: str) -> Dataset:
    return _stored(session, Dataset, dataset_id, DatasetNotFound)


def get_job_or_404(session: Session, job_id: str) -> Job:
    return _stored(session, Job, job_id, JobNotFound)


def get_model_or_404(session: Session, model_id: str) -> ModelRecord:
    return _stored(session, ModelRecord, model_id, ModelNotFound)


def get_evaluation_or_404(session: Session, evaluation_id: str) -> Evaluation:
    return _stored(session, Evaluation, evaluation_id, EvaluationNotFound)
