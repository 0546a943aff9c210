"""The model registry: list, show, deploy (synchronous, atomic switch for /predict), delete, download."""
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import DEFAULT_LIMIT, LimitQuery, OffsetQuery, SessionDep
from app.auth import require_admin, require_predict
from app.db import store
from app.db.models import ModelRecord
from app.schemas import Page
from app.serving.archive import tar_gz_chunks
from app.serving.schemas import ModelOut
from app.serving.service import ModelNotFound, PredictionService
from model_core.checkpoint import CheckpointError

router = APIRouter(prefix="/models", tags=["models"])


async def prediction_service(request: Request) -> PredictionService:  # async: no threadpool hop
    return request.app.state.prediction_service


ServiceDep = Annotated[PredictionService, Depends(prediction_service)]


def _get_record(session: Session, model_id: str) -> ModelRecord:
    record = session.get(ModelRecord, model_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model_id} not found")
    return record


@router.get("", response_model=Page[ModelOut], dependencies=[Depends(require_predict)])
def list_models(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    """Registered models, newest first."""
    items, total = store.page(session, select(ModelRecord), ModelRecord.created_at, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{model_id}", response_model=ModelOut, dependencies=[Depends(require_predict)])
def get_model(model_id: str, session: SessionDep) -> ModelRecord:
    return _get_record(session, model_id)


@router.post("/{model_id}/deploy", response_model=ModelOut, dependencies=[Depends(require_admin)])
async def deploy_model(model_id: str, service: ServiceDep) -> ModelRecord:
    """Makes the model the default of /predict. Returns once it is loaded and serving; requests already running
    finish on the model they started with."""
    try:
        return await service.deploy(model_id)
    except ModelNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except CheckpointError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"model {model_id} cannot be loaded: {error}") from error


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def delete_model(model_id: str, session: SessionDep, service: ServiceDep) -> Response:
    """Deletes the record and its directory; the deployed model cannot be deleted (409)."""
    record = _get_record(session, model_id)
    if record.deployed:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"model {model_id} is deployed: deploy another model before deleting it"
        )
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
    """A .tar.gz of the Hugging Face-compatible model directory (config.json, model.safetensors, vocab.txt)."""
    model_dir = Path(_get_record(session, model_id).path)
    if not model_dir.is_dir():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the files of model {model_id} are gone")
    return StreamingResponse(
        tar_gz_chunks(model_dir, arcname=model_id),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="model-{model_id}.tar.gz"'},
    )
