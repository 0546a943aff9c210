"""Operations: liveness and readiness (open), Prometheus metrics and the OpenAPI page and schema (admin when
keys are set)."""
import asyncio

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app import metrics
from app.api.deps import SessionDep
from app.auth import require_admin
from app.db import jobs
from app.schemas import Health

READY_TIMEOUT_S = 5

router = APIRouter(tags=["ops"])
admin_router = APIRouter(tags=["ops"], dependencies=[Depends(require_admin)])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok")


async def _problem(check, what: str) -> str | None:
    try:
        await asyncio.wait_for(run_in_threadpool(check), READY_TIMEOUT_S)
    except TimeoutError:
        return f"{what}: no answer within {READY_TIMEOUT_S} s"
    except Exception as error:  # any driver/transport error means "not ready"
        return f"{what}: {type(error).__name__}: {error}"
    return None


@router.get("/ready", response_model=Health, responses={503: {"description": "Store or queue not answering"}})
async def ready(request: Request):
    """200 when the store and the job queue answer; 503 naming what failed."""
    def check_store() -> None:
        with request.app.state.session_factory() as session:
            session.execute(text("SELECT 1"))

    problems = [p for p in await asyncio.gather(_problem(check_store, "store"),
                                                _problem(request.app.state.check_queue, "queue")) if p]
    if problems:
        return JSONResponse({"detail": "not ready: " + "; ".join(problems)}, status_code=503)
    return Health(status="ok")


@admin_router.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)")
def prometheus_metrics(session: SessionDep) -> Response:
    for status, count in jobs.count_by_status(session).items():
        metrics.JOBS.labels(status).set(count)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@admin_router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@admin_router.get("/docs", include_in_schema=False)
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Fine-tuning service")
