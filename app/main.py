"""The FastAPI app factory: settings -> store, queue, prediction service, routers."""
import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from app.api.routes import base_models, datasets, deployments, evaluations, models, ops, predict, ui
from app.api.routes import jobs as job_routes
from app.auth import install_auth
from app.db import jobs
from app.db.session import make_session_factory
from app.errors import install_error_handlers
from app.metrics import install_metrics
from app.queue import check_broker, make_celery, send_job
from app.serving.service import PredictionService
from app.settings import Settings, load_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Fine-tune BERT text classifiers on your labeled TSV/CSV files and serve their predictions.

Upload a dataset (`POST /datasets`), queue a job (`POST /jobs`), follow it (`GET /jobs/{id}/events`),
then `POST /predict` with the model it trained (deployed automatically as AUTO_DEPLOY says). Evaluate models on
new data (`POST /models/{id}/evaluations`), deploy behind a promotion gate, roll back (`POST /deployments/rollback`)."""


def reaper_interval(settings: Settings) -> float:
    return min(30.0, max(1.0, settings.job_lease_seconds / 2))


def requeue_stale_jobs(app: FastAPI) -> list[str]:
    """Jobs whose worker stopped heartbeating go back to the queue (or fail after jobs.MAX_ATTEMPTS)."""
    with app.state.session_factory() as session:
        job_ids = jobs.requeue_stale_jobs(session, app.state.settings.job_lease_seconds, app.state.enqueue_job)
    for job_id in job_ids:
        log.warning("job %s lost its worker; queued again", job_id)
    return job_ids


async def _reap_forever(app: FastAPI) -> None:
    while True:
        try:
            await run_in_threadpool(requeue_stale_jobs, app)
        except Exception:  # the store or broker may be briefly away; try again next round
            log.exception("requeueing stale jobs failed")
        await asyncio.sleep(reaper_interval(app.state.settings))


@asynccontextmanager
async def lifespan(app: FastAPI):
    service = PredictionService(app.state.settings, app.state.session_factory)
    await service.start()
    app.state.prediction_service = service
    reaper = asyncio.create_task(_reap_forever(app))
    try:
        yield
    finally:
        reaper.cancel()
        await service.stop()


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(job_routes.OPENAPI_SCHEMAS)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    # FastAPI's native OpenTelemetry off: /metrics is the telemetry, and its per-request checks cost ~30 us
    app = FastAPI(title="BERT fine-tuning service", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    celery = make_celery(settings)
    app.state.settings = settings
    app.state.session_factory = make_session_factory(settings.database_url)
    app.state.enqueue_job = lambda job_id, kind: send_job(celery, job_id, kind)
    app.state.check_queue = lambda: check_broker(celery)
    install_auth(app, settings)
    install_error_handlers(app)
    install_metrics(app)
    # /predict first: routes are matched in order, and it is the hot path
    for router in (predict.router, ops.router, ops.admin_router, datasets.router, job_routes.router,
                   base_models.router, models.router, evaluations.router, deployments.router, ui.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=ops.STATIC_DIR), name="static")
    app.openapi = lambda: _openapi(app)
    return app
