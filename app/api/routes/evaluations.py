"""Evaluations of models on labeled datasets: queue one (a job of kind "evaluate"), list a model's, show one,
compare two on the same dataset."""
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy import select

from app.api.deps import (
    DEFAULT_LIMIT,
    LimitQuery,
    OffsetQuery,
    SessionDep,
    get_dataset_or_404,
    get_evaluation_or_404,
    get_model_or_404,
)
from app.api.routes.jobs import enqueue
from app.auth import require_admin
from app.db import jobs, store
from app.db.models import Evaluation
from app.errors import EvaluationDatasetDeleted, Unprocessable
from app.evaluation import check_evaluable
from app.gate import compare
from app.schemas import EvaluationComparison, EvaluationCreate, JobOut, Page
from app.serving.schemas import EvaluationOut

router = APIRouter(tags=["evaluations"], dependencies=[Depends(require_admin)])

EvaluationId = Annotated[str, Query(description="An evaluation id.")]


@router.post("/models/{model_id}/evaluations", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses={404: {"description": "Unknown model or dataset"},
                        409: {"description": "The dataset's file was deleted"},
                        422: {"description": "Labels the model lacks, or single- vs multi-label data"}})
def create_evaluation(model_id: str, body: EvaluationCreate, request: Request, session: SessionDep) -> JobOut:
    """Queue an evaluation job (kind "evaluate") of the model on a labeled dataset whose labels are all the
    model's. Follow it as any job (GET /jobs/{id}, /events, cancel); when it succeeds its report is listed by
    GET /models/{id}/evaluations. Nothing is stored for a refused request."""
    model = get_model_or_404(session, model_id)
    dataset = get_dataset_or_404(session, body.dataset_id)
    check_evaluable(model, dataset)
    job = jobs.create_evaluation(session, model=model, dataset_id=dataset.id)
    enqueue(request, session, job)
    return JobOut.of(job)


@router.get("/models/{model_id}/evaluations", response_model=Page[EvaluationOut],
            responses={404: {"description": "Unknown model"}})
def list_evaluations(model_id: str, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                     offset: OffsetQuery = 0) -> dict:
    """The model's evaluation reports, newest first: its held-out one and those on datasets (evaluation jobs and
    the deploy gate)."""
    get_model_or_404(session, model_id)
    items, total = store.page(session, select(Evaluation).where(Evaluation.model_id == model_id),
                              Evaluation.created_at, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/evaluations/compare", response_model=EvaluationComparison,
            responses={404: {"description": "Unknown evaluation"},
                       409: {"description": "The dataset of an evaluation was deleted"},
                       422: {"description": "The evaluations are not on the same dataset"}})
def compare_evaluations(session: SessionDep, a: EvaluationId, b: EvaluationId) -> dict:
    """b - a of two evaluations on the same dataset (two models, or one model twice): accuracy, macro-F1 and each
    class's precision, recall and F1, each as {"a", "b", "delta"}."""
    first, second = get_evaluation_or_404(session, a), get_evaluation_or_404(session, b)
    for evaluation in (first, second):
        if evaluation.dataset_id is None and evaluation.source == "dataset":
            raise EvaluationDatasetDeleted(evaluation.id)
    if first.dataset_id is None or first.dataset_id != second.dataset_id:
        raise Unprocessable(f"evaluations {a} (dataset {first.dataset_id}) and {b} (dataset {second.dataset_id}) "
                            "are not on the same dataset: only evaluations on one dataset compare")
    return {"a": first, "b": second, **compare(first.report, second.report)}


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut,
            responses={404: {"description": "Unknown evaluation"}})
def get_evaluation(evaluation_id: str, session: SessionDep) -> Evaluation:
    return get_evaluation_or_404(session, evaluation_id)
