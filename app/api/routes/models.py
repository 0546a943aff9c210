"""The model registry: list, show, deploy (synchronous, atomic switch for /predict), delete, download."""
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from app.api.deps import DEFAULT_LIMIT, LimitQuery, OffsetQuery, ServiceDep, SessionDep, get_model_or_404
from app.auth import require_admin, require_predict
from app.db import store
from app.db.models import ModelRecord
from app.errors import ModelDeployed, ModelFilesGone
from app.schemas import Page
from app.serving.archive import tar_gz_chunks
from app.serving.schemas import ModelOut

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=Page[ModelOut], dependencies=[Depends(require_predict)])
def list_models(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    """Registered models, newest first."""
    items, total = store.page(session, select(ModelRecord), ModelRecord.created_at, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{model_id}", response_model=ModelOut, dependencies=[Depends(require_predict)])
def get_model(model_id: str, session: SessionDep) -> ModelRecord:
    return get_model_or_404(session, model_id)


@router.post("/{model_id}/deploy", response_model=ModelOut, dependencies=[Depends(require_admin)])
async def deploy_model(model_id: str, service: ServiceDep) -> ModelRecord:
    """Makes the model the default of /predict. Returns once it is loaded and serving; requests already running
    finish on the model they started with."""
    return await service.deploy(model_id)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def delete_model(model_id: str, session: SessionDep, service: ServiceDep) -> Response:
    """Deletes the record and its directory; the deployed model cannot be deleted (409)."""
    record = get_model_or_404(session, model_id)
    if record.deployed:
        raise ModelDeployed(f"model {model_id} is deployed: deploy another model before deleting it")
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
    model_dir = Path(get_model_or_404(session, model_id).path)
    if not model_dir.is_dir():
        raise ModelFilesGone(model_id)
    return StreamingResponse(
        tar_gz_chunks(model_dir, arcname=model_id),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="model-{model_id}.tar.gz"'},
    )
