"""POST /predict: the HTTP face of the PredictionService (validation and error codes; batching lives below)."""
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse

from app.api.routes.models import ServiceDep
from app.auth import require_predict
from app.serving.batcher import QueueFull
from app.serving.replicas import ReplicaDied
from app.serving.schemas import MAX_PREDICT_INPUTS, PredictRequest, PredictResponse
from app.serving.service import ModelNotFound, NoModelDeployed
from model_core.checkpoint import CheckpointError

router = APIRouter(tags=["predict"], dependencies=[Depends(require_predict)])


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={
        404: {"description": "Unknown model."},
        409: {"description": "No model is deployed and none was named, or the model's files cannot be loaded."},
        422: {"description": f"Empty inputs, more than {MAX_PREDICT_INPUTS}, a non-string input or an unknown field."},
        503: {"description": "The prediction queue is full, or an inference process died; retry after the "
                            "Retry-After header's seconds."},
    },
)
async def predict(body: PredictRequest, service: ServiceDep) -> JSONResponse:
    """Label and probability for each input, in input order. Concurrent requests are batched together."""
    try:
        prediction = await service.predict(body.model, body.pairs())
    except ModelNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except NoModelDeployed as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except CheckpointError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the model cannot be loaded: {error}") from error
    except QueueFull as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(error), headers={"Retry-After": str(error.retry_after_s)}
        ) from error
    except ReplicaDied as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), headers={"Retry-After": "1"}) from error
    labels = prediction.labels
    predictions = []
    for row in prediction.probs:
        best = max(range(len(row)), key=row.__getitem__)
        answer = {"label": labels[best], "score": row[best]}
        if body.return_all_scores:
            answer["scores"] = dict(zip(labels, row))
        predictions.append(answer)
    # built as plain JSON: PredictResponse documents this shape, re-validating it would cost more than the rest
    return JSONResponse({"model": prediction.model_id, "predictions": predictions})
