"""Every error the service answers a request with, and the one table from error kinds to HTTP statuses.

Routes and the layers below them raise these (or let model_core's errors propagate); the app factory calls
`install_error_handlers`, which registers one handler per row of ERROR_STATUS. No route turns a domain error
into an HTTPException itself. The answer has FastAPI's shape, `{"detail": ...}`, and an `Unavailable` error
adds `Retry-After`.
"""
from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from model_core.base_models import BaseModelNotFound
from model_core.config import ConfigError
from model_core.data import DataError


class ServiceError(Exception):
    """A request the service refuses; `detail` is what the client reads (a message, pydantic's error list, or an
    object such as the promotion gate's comparison)."""

    def __init__(self, detail: str | list | dict):
        super().__init__(detail)
        self.detail = detail


# --- the kinds: each is one row of ERROR_STATUS ---------------------------------------------------------------------

class NotFound(ServiceError, LookupError):
    """The id names nothing stored."""


class Conflict(ServiceError):
    """The request is well formed, but the state of what it names forbids it."""


class Unprocessable(ServiceError, ValueError):
    """The request's content is invalid."""

    @classmethod
    def from_validation(cls, error: ValidationError) -> Unprocessable:
        """pydantic's field errors of a body read by hand, in the shape FastAPI gives its own."""
        return cls(error.errors(include_url=False, include_context=False, include_input=False))


def _json_safe(value):
    """`value` with NaN and +-Infinity as strings: JSON cannot carry them, and a body may hold them (Python's JSON
    parser reads `NaN`), so a validation error that echoes one must still be a 422, not a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def validation_error_response(error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a request that fails its schema, with non-finite inputs quoted (_json_safe)."""
    return JSONResponse({"detail": _json_safe(jsonable_encoder(error.errors()))}, status_code=422)


class TooLarge(ServiceError):
    """An upload over MAX_UPLOAD_MB."""


class UnsupportedMediaType(ServiceError):
    """A body of a content type the endpoint does not read."""


class Unavailable(ServiceError):
    """A part of the service cannot take the request now; the client may retry after `retry_after_s`."""

    def __init__(self, detail: str, retry_after_s: int | None = None):
        super().__init__(detail)
        self.retry_after_s = retry_after_s


ERROR_STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    BaseModelNotFound: 404,  # model_core: an unknown base model name or directory
    Conflict: 409,
    Unprocessable: 422,
    DataError: 422,  # model_core: a data file that cannot be read as a labeled table
    ConfigError: 422,  # model_core: a base model whose config describes no usable BERT
    TooLarge: 413,
    UnsupportedMediaType: 415,
    Unavailable: 503,
}


# --- the service's errors, by kind ----------------------------------------------------------------------------------

class RowNotFound(NotFound):
    """No stored `kind` (a table's row) has this id."""

    kind = "row"

    def __init__(self, key: str):
        super().__init__(f"{self.kind} {key} not found")


class DatasetNotFound(RowNotFound):
    kind = "dataset"


class JobNotFound(RowNotFound):
    kind = "job"


class ModelNotFound(RowNotFound):
    kind = "model"


class EvaluationNotFound(RowNotFound):
    kind = "evaluation"


class ModelFilesGone(NotFound):
    def __init__(self, model_id: str):
        super().__init__(f"the files of model {model_id} are gone")


class NoHeldOutEvaluation(NotFound):
    """A model without a held-out evaluation report (registered before reports existed, or trained elsewhere)."""

    def __init__(self, model_id: str):
        super().__init__(f"model {model_id} has no held-out evaluation report")


class JobFinished(Conflict):
    """A cancel for a job that already ended."""


class DatasetInUse(Conflict):
    """Deleting a dataset that a queued or running job reads."""


class ModelDeployed(Conflict):
    """Deleting the model /predict answers with."""


class DatasetFilesGone(Conflict):
    """Evaluating on a dataset whose stored file was deleted (the row outlived it)."""

    def __init__(self, dataset_id: str):
        super().__init__(f"the file of dataset {dataset_id} was deleted: upload the data again")


class EvaluationDatasetDeleted(Conflict):
    """Comparing an evaluation whose dataset was deleted: that both were on the same data can no longer be shown."""

    def __init__(self, evaluation_id: str):
        super().__init__(f"the dataset of evaluation {evaluation_id} was deleted: it cannot be compared")


class ModelBeingEvaluated(Conflict):
    """Deleting a model that a queued or running evaluation job reads."""


class GateRefused(Conflict):
    """A deploy the promotion gate refused; the detail is the gate's comparison, per-class deltas included."""


class DeployedModelChanged(Conflict):
    """A deploy decided against one deployed model (the gate compared with it) after another was deployed."""

    def __init__(self, model_id: str, compared_with: str | None, deployed: str | None):
        self.deployed_model_id = deployed
        super().__init__(f"model {model_id} was compared with "
                         f"{'no deployed model' if compared_with is None else f'model {compared_with}'}, but "
                         f"{'none' if deployed is None else f'model {deployed}'} is deployed now: deploy again to "
                         "compare it with that")


class NothingToRollBack(Conflict):
    """A rollback with no earlier deployed model to return to."""


class NoModelDeployed(Conflict):
    def __init__(self):
        super().__init__("no model is deployed: deploy one with POST /models/{id}/deploy")


class ModelUnloadable(Conflict):
    """A stored model whose files cannot be loaded."""


class QueueUnavailable(Unavailable):
    """The job queue's broker did not take a job."""


class PredictQueueFull(Unavailable):
    """More /predict inputs are waiting than MAX_QUEUE_INPUTS."""

    def __init__(self, pending: int, limit: int, retry_after_s: int):
        super().__init__(f"{pending} inputs are waiting for prediction (limit {limit}); retry in {retry_after_s} s",
                         retry_after_s)


class ReplicaDied(Unavailable):
    """An inference process died while it ran a batch; the next request loads the model anew."""

    def __init__(self):
        super().__init__("an inference process died; the model is being loaded again, retry", retry_after_s=1)


def _error_response(status_code: int):
    async def respond(_request: Request, error: Exception) -> JSONResponse:
        detail = error.detail if isinstance(error, ServiceError) else str(error)
        retry_after = getattr(error, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)

    return respond


def install_error_handlers(app: FastAPI) -> None:
    for error_kind, status_code in ERROR_STATUS.items():
        app.add_exception_handler(error_kind, _error_response(status_code))
