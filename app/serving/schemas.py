"""Request and response bodies of /models and /predict, field for field as in CONTRACT.md."""
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from model_core.config import ProblemType

MAX_PREDICT_INPUTS = 256


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: str
    job_id: str | None
    base_model: str
    labels: list[str] = Field(description="Label names in class-id order.")
    problem_type: ProblemType = Field(description="single_label_classification (one label per input) or "
                              "multi_label_classification (any number, a threshold per label), as in config.json.")
    metrics: dict
    created_at: datetime
    size_bytes: int = Field(description="Size of the model directory in bytes.")
    deployed: bool
    min_confidence: float | None = Field(None, description="Single-label: /predict abstains (label null) when the "
                                         "top probability is below it; null: never abstains. Set by PATCH.")
    thresholds: dict[str, float] | None = Field(None, description="Multi-label: thresholds set by hand with PATCH, "
                                                "over the ones tuned after training; null: the tuned ones.")


class ModelPatch(BaseModel):
    """The decision settings of a model; a field left out is unchanged, null clears it."""

    model_config = ConfigDict(extra="forbid")

    min_confidence: float | None = Field(None, ge=0, le=1, description="Single-label models, in [0, 1]: below "
                                         "this top probability /predict answers label null and abstained true.")
    thresholds: dict[str, float] | None = Field(None, description="Multi-label models: {label: threshold in "
                                                "[0, 1]} set by hand (replacing any set before); labels left out "
                                                "keep their tuned threshold.")


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: str
    model_id: str
    dataset_id: str | None = Field(description="The dataset evaluated on; null for a held-out split of the "
                                   "training dataset.")
    job_id: str | None = Field(description="The job that computed it; null when the deploy gate did.")
    source: str = Field(description='"held_out": the training job\'s evaluation set; "dataset": an evaluation job '
                        "or the deploy gate, on dataset_id.")
    report: dict = Field(description="The evaluation report: metrics, per_class, confusion_matrix, calibration, "
                         "coverage, confident_mistakes, baselines, thresholds, warnings (see the README).")
    created_at: datetime


class TextPairInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr
    text_pair: StrictStr | None = None


PredictInput = StrictStr | TextPairInput


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: StrictStr | None = Field(None, description="A model id; null: the deployed model.")
    inputs: PredictInput | Annotated[list[PredictInput], Field(min_length=1, max_length=MAX_PREDICT_INPUTS)] = Field(
        description=f"One input or a list of 1 to {MAX_PREDICT_INPUTS}. An input is a string or "
        '{"text", "text_pair"}; an empty string is valid; texts longer than the model\'s max_len are truncated.'
    )
    return_all_scores: StrictBool = Field(False, description="Add every label's probability as `scores` (a "
                                          "multi-label model always does).")

    def pairs(self) -> list[tuple[str, str | None]]:
        inputs = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        return [(item, None) if isinstance(item, str) else (item.text, item.text_pair) for item in inputs]


class LabelScore(BaseModel):
    label: str | None = Field(description="The likeliest label; null when the model abstained.")
    score: float = Field(description="The likeliest label's (calibrated) probability.")
    scores: dict[str, float] | None = Field(None, description="Every label's probability (return_all_scores, or "
                                            "the model abstained).")
    abstained: bool | None = Field(None, description="Present when the model has a min_confidence: whether the "
                                   "score is below it.")


class LabelsScores(BaseModel):
    """A multi-label model's answer to one input."""

    labels: list[str] = Field(description="The labels whose probability reaches their threshold, in label order "
                              "(possibly none).")
    scores: dict[str, float] = Field(description="Every label's probability (its own sigmoid).")


class PredictResponse(BaseModel):
    model: str = Field(description="Id of the model that answered.")
    predictions: list[LabelScore] | list[LabelsScores] = Field(
        description="One per input, in input order: label and score from a single-label model, labels and scores "
        "from a multi-label one.")
