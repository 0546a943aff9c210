"""The model registry: list, show, set decision settings, deploy (synchronous, atomic switch for /predict), delete,
download (with a generated model card), and the held-out evaluation report."""
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import DEFAULT_LIMIT, LimitQuery, OffsetQuery, ServiceDep, SessionDep, get_model_or_404
from app.auth import require_admin, require_predict
from app.db import evaluations, jobs, store
from app.db.models import Dataset, Evaluation, Job, ModelRecord
from app.errors import ModelBeingEvaluated, ModelDeployed, ModelFilesGone, NoHeldOutEvaluation
from app.evaluation import gate_deploy
from app.schemas import DeployRequest, Page
from app.serving.archive import tar_gz_chunks
from app.serving.model_card import MODEL_CARD_FILE, model_card
from app.serving.schemas import EvaluationOut, ModelOut, ModelPatch
from app.serving.service import DecisionSettings

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=Page[ModelOut], dependencies=[Depends(require_predict)])
def list_models(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    """Registered models, newest first."""
    items, total = store.page(session, select(ModelRecord), ModelRecord.created_at, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{model_id}", response_model=ModelOut, dependencies=[Depends(require_predict)])
def get_model(model_id: str, session: SessionDep) -> ModelRecord:
    return get_model_or_404(session, model_id)


@router.patch("/{model_id}", response_model=ModelOut, dependencies=[Depends(require_admin)],
              responses={422: {"description": "min_confidence outside [0, 1], thresholds outside [0, 1] or for labels "
                               "the model lacks, or a setting of the other problem type; nothing is changed."}})
def patch_model(model_id: str, body: ModelPatch, session: SessionDep, service: ServiceDep) -> ModelRecord:
    """Sets the model's decision settings; a field left out stays, null clears it. `min_confidence` (single-label):
    /predict answers `"label": null, "abstained": true` when the top probability is below it. `thresholds`
    (multi-label): {label: threshold} over the ones tuned after training. The next /predict uses them."""
    record = store.set_decision_settings(session, get_model_or_404(session, model_id),
                                         body.model_dump(exclude_unset=True))
    service.decision_changed(model_id, DecisionSettings.of(record))
    return record


@router.get("/{model_id}/evaluation", response_model=EvaluationOut, dependencies=[Depends(require_admin)],
            responses={404: {"description": "Unknown model, or a model without a held-out report."}})
def get_evaluation(model_id: str, session: SessionDep) -> Evaluation:
    """The model's evaluation report on its training job's evaluation set (the held-out split, or the eval dataset
    given), computed when the job ended: metrics, per-class figures, confusion matrix, calibration, coverage at
    confidence levels, the most confident mistakes, baselines and warnings."""
    get_model_or_404(session, model_id)
    evaluation = evaluations.held_out(session, model_id)
    if evaluation is None:
        raise NoHeldOutEvaluation(model_id)
    return evaluation


@router.post("/{model_id}/deploy", response_model=ModelOut, dependencies=[Depends(require_admin)],
             responses={404: {"description": "Unknown model or dataset"},
                        409: {"description": "Refused by the promotion gate (detail: its reasons and per-class "
                              "deltas), another model deployed since the gate compared, or the dataset's file was "
                              "deleted"},
                        422: {"description": "A dataset with labels a model lacks, or too large to evaluate here"}})
async def deploy_model(model_id: str, request: Request, service: ServiceDep,
                       body: DeployRequest | None = None) -> ModelRecord:
    """Makes the model the default of /predict. Returns once it is loaded and serving; requests already running
    finish on the model they started with. With `require_better_than_deployed`, the promotion gate first
    evaluates both models on `on_dataset` (reusing their stored evaluations on it) and refuses with 409 unless
    this model is at least as good (app.gate). Each deploy is recorded in GET /deployments."""
    detail = None
    if body is not None and body.require_better_than_deployed:
        def run_gate() -> dict | None:
            with request.app.state.session_factory() as session:
                return gate_deploy(session, get_model_or_404(session, model_id), body.on_dataset,
                                   body.max_class_drop, request.app.state.settings)

        detail = await run_in_threadpool(run_gate)
    return await service.deploy(model_id, reason="manual", detail=detail)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def delete_model(model_id: str, session: SessionDep, service: ServiceDep) -> Response:
    """Deletes the record and its directory; the deployed model cannot be deleted (409)."""
    record = get_model_or_404(session, model_id)
    if record.deployed:
        raise ModelDeployed(f"model {model_id} is deployed: deploy another model before deleting it")
    if active := jobs.active_job_evaluating(session, model_id):
        raise ModelBeingEvaluated(f"model {model_id} is evaluated by job {active}, which is not finished; cancel it "
                                  "or wait")
    session.delete(record)
    session.commit()
    service.forget(model_id)
    shutil.rmtree(record.path, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{model_id}/download",
    response_class=StreamingResponse,
    dependencies=[Depends(require_admin)],
    responses={200: {"content": {"application/gzip": {}}, "description": "the model directory as .tar.gz"}},
)
def download_model(model_id: str, session: SessionDep) -> StreamingResponse:
    """A .tar.gz of the Hugging Face-compatible model directory (config.json, model.safetensors, vocab.txt,
    calibration.json or thresholds.json, evaluation.json) with a README.md model card generated now: base model,
    data, hyperparameters, held-out figures, calibration, the decision settings as they are, intended use."""
    record = get_model_or_404(session, model_id)
    model_dir = Path(record.path)
    if not model_dir.is_dir():
        raise ModelFilesGone(model_id)
    job = session.get(Job, record.job_id) if record.job_id else None
    dataset = session.get(Dataset, job.dataset_id) if job is not None and job.dataset_id else None
    card = model_card(record, job, dataset, evaluations.held_out(session, model_id))
    return StreamingResponse(
        tar_gz_chunks(model_dir, arcname=model_id, extra={MODEL_CARD_FILE: card.encode()}),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="model-{model_id}.tar.gz"'},
    )
