"""Pretrained checkpoints that jobs may start from."""
from fastapi import APIRouter, Depends

from app.auth import require_admin
from app.schemas import BaseModelOut
from model_core.base_models import list_base_models

router = APIRouter(prefix="/base-models", tags=["models"], dependencies=[Depends(require_admin)])


@router.get("", response_model=list[BaseModelOut])
def get_base_models() -> list[dict]:
    """Named base models installed here; a job may also name a Hugging Face BERT directory by path."""
    return list_base_models()
