"""POST /predict: the HTTP face of the PredictionService (validation and error codes; batching lives below)."""
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.api.deps import ServiceDep
from app.auth import require_predict
from app.serving.schemas import MAX_PREDICT_INPUTS, PredictRequest, PredictResponse
from model_core.predict import prediction_row

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
    """For each input, in input order: a single-label model's likeliest label and its (calibrated) probability,
    with `abstained` when the model has a min_confidence (below it the label is null and every label's probability
    is given); a multi-label model's labels whose probability reaches their threshold (hand-set over tuned), and
    every label's probability. Concurrent requests are batched together."""
    prediction = await service.predict(body.model, body.pairs())
    predictions = [prediction_row(prediction.labels, row, body.return_all_scores, prediction.thresholds,
                                  prediction.min_confidence)
                   for row in prediction.probs]
    # built as plain JSON: PredictResponse documents this shape, re-validating it would cost more than the rest
    return JSONResponse({"model": prediction.model_id, "predictions": predictions})
