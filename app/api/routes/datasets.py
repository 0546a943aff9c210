"""Datasets: labeled TSV/CSV uploads, validated while they are stored."""
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from app.api.deps import DEFAULT_LIMIT, LimitQuery, OffsetQuery, SessionDep, SettingsDep, get_dataset_or_404
from app.auth import require_admin
from app.db import jobs, store
from app.db.models import Dataset
from app.errors import DatasetInUse
from app.schemas import DatasetOut, Page
from app.uploads import READ_FIELDS, READ_FIELDS_SCHEMA, ColumnChoice, receive_form, store_dataset

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(require_admin)])

UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "TSV (or CSV by a .csv name), header row first, UTF-8; at most MAX_UPLOAD_MB."},
                "name": {"type": "string"},
                **READ_FIELDS_SCHEMA,
            },
        }}},
    }
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, openapi_extra=UPLOAD_FORM,
             responses={413: {"description": "File over MAX_UPLOAD_MB"}, 422: {"description": "Invalid file"}})
async def upload_dataset(request: Request, session: SessionDep, settings: SettingsDep) -> Dataset:
    """Upload a labeled file; 422 names the line(s) and the reason, and nothing is stored. A stored dataset
    carries `warnings`: duplicate and conflicting texts, small classes, short texts (none refuses the upload)."""
    with await receive_form(request, file_fields={"file"}, text_fields={"name", *READ_FIELDS},
                            artifact_dir=settings.artifact_dir, max_upload_mb=settings.max_upload_mb) as form:
        dataset = await store_dataset(session, form, "file", ColumnChoice.from_form(form.fields),
                                      form.fields.get("name"), settings.artifact_dir)
        session.commit()
    return dataset


@router.get("", response_model=Page[DatasetOut])
def list_datasets(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    items, total = store.page(session, select(Dataset), Dataset.created_at, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep) -> Dataset:
    return get_dataset_or_404(session, dataset_id)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={409: {"description": "Used by a queued or running job"}})
def delete_dataset(dataset_id: str, session: SessionDep) -> Response:
    dataset = get_dataset_or_404(session, dataset_id)
    if active := jobs.active_job_reading(session, dataset_id):
        raise DatasetInUse(f"dataset {dataset_id} is used by job {active}, which is not finished; cancel it or wait")
    session.delete(dataset)
    session.commit()
    shutil.rmtree(Path(dataset.path).parent, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
