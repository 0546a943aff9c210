"""Operations: liveness and readiness (open), Prometheus metrics, the OpenAPI schema and its pages /docs and
/redoc (admin when keys are set). The pages' scripts and styles are served from STATIC_DIR, open: they are
public library code, and a browser fetches them without the page's key."""
import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
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
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
VENDOR_URL = "/static/vendor"  # scripts/vendor_assets.sh fills it from npm: the pages need no internet

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
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Fine-tuning service",
                               swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
                               swagger_favicon_url=f"{VENDOR_URL}/swagger-ui/favicon-32x32.png")


@admin_router.get("/redoc", include_in_schema=False)
def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title="Fine-tuning service",
                          redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
                          redoc_favicon_url=f"{VENDOR_URL}/swagger-ui/favicon-32x32.png", with_google_fonts=False)
