"""The deployment history (every change of the deployed model, app.db.store.deploy_model) and rollback."""
from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import DEFAULT_LIMIT, LimitQuery, OffsetQuery, ServiceDep, SessionDep
from app.auth import require_admin
from app.db import store
from app.db.models import Deployment, ModelRecord
from app.schemas import DeploymentOut, Page
from app.serving.schemas import ModelOut

router = APIRouter(prefix="/deployments", tags=["deployments"], dependencies=[Depends(require_admin)])


@router.get("", response_model=Page[DeploymentOut])
def list_deployments(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, offset: OffsetQuery = 0) -> dict:
    """Every change of the deployed model, newest first: which model, over which, why (manual, auto, rollback)
    and the promotion gate's comparison when one ran."""
    items, total = store.page(session, select(Deployment), Deployment.id, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/rollback", response_model=ModelOut,
             responses={409: {"description": "No earlier deployed model to return to (or it was deleted)"}})
async def rollback(request: Request, service: ServiceDep) -> ModelRecord:
    """Deploys again the model that was deployed before the current one (no gate), recorded as a rollback; a
    second rollback undoes the first. Synchronous, like POST /models/{id}/deploy."""
    def target() -> str:
        with request.app.state.session_factory() as session:
            return store.rollback_target(session)

    return await service.deploy(await run_in_threadpool(target), reason="rollback")
