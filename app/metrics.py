"""Prometheus metrics: HTTP requests per route template and status, /predict batching, model loads, jobs.

`install_metrics(app)` adds the request-counting middleware; GET /metrics (app/api/routes/ops.py) serves them.
The metric objects live in prometheus-client's default registry, so they are created once per process.
"""
import time

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests answered, by method, route template and status.", ["method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request to the end of the response, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PREDICT_BATCH_SIZE = Histogram(
    "predict_batch_size", "Inputs per model forward pass.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
PREDICT_BATCH_TOKENS = Histogram(
    "predict_batch_tokens",
    "Padded tokens (batch size x longest input) per model forward pass.",
    buckets=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
)
PREDICT_BATCH_SECONDS = Histogram(
    "predict_batch_seconds",
    "Time of one forward pass (padding, model, softmax), from sending the batch to the replica and back.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PREDICT_QUEUE_WAIT = Histogram(
    "predict_queue_wait_seconds",
    "Time an input waits in the batching queue before its batch starts.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PREDICT_PENDING_INPUTS = Gauge("predict_pending_inputs", "Inputs admitted to /predict and not yet answered.")
MODEL_LOAD_SECONDS = Histogram(
    "model_load_seconds", "Time to load a model for /predict.", buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
)
JOBS = Gauge("jobs", "Fine-tuning jobs in the store, by status (read at scrape time).", ["status"])

UNMATCHED_ROUTE = "<unmatched>"  # one label for every path no route matches, so scanners cannot blow up cardinality


class MetricsMiddleware:
    """Pure ASGI middleware (it does not buffer streamed responses such as downloads or server-sent events)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            labels = (scope["method"], route, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)
