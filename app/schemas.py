"""Request and response bodies of the datasets, jobs and operations endpoints, field for field as in CONTRACT.md."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.db.jobs import JobStatus
from app.db.models import Job, MetricPoint
from app.gate import DEFAULT_MAX_CLASS_DROP
from app.serving.schemas import EvaluationOut
from model_core.config import TrainConfig

MAX_PAGE_LIMIT = 200
DEFAULT_PAGE_LIMIT = 50


class StrictBody(BaseModel):
    """A request body: an unknown field (a typo such as `learning_rte`) is a 422, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class WarningOut(BaseModel):
    """Something a person should know about a dataset or a job; nothing was refused for it."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="What it is about, e.g. duplicate_texts, label_conflicts, train_eval_overlap; "
                      "the kinds and their fields are in the README.")
    message: str = Field(description="One sentence: what was found, where, and what to do about it.")


# --- datasets ------------------------------------------------------------------------------------------------------

class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    n_rows: int
    labels: dict[str, int] = Field(description="label -> number of rows that have it, in first-seen order")
    label_column: str
    text_column: str
    text_pair_column: str | None
    label_delimiter: str | None = Field(description="What separates the labels of a multi-label label cell; null: "
                                        "single-label.")
    multi_label: bool = Field(description="Whether a row may have several labels (a label_delimiter was given).")
    allow_no_label: bool = Field(description="Multi-label: whether a row may have no label.")
    sha256: str = Field(description="sha256 of the raw uploaded bytes")
    created_at: datetime
    filename: str
    format: str = Field(description="tsv or csv")
    size_bytes: int
    warnings: list[WarningOut] | None = Field(description="The data checks of the upload (duplicates, label "
                                              "conflicts, small classes, short texts), each with the file lines "
                                              "concerned; [] when none; null for a dataset stored before the checks.")


# --- jobs ----------------------------------------------------------------------------------------------------------

SERVICE_DEFAULTS = {"save_steps": 500}  # a job's defaults where they differ from the trainer's: a job checkpoints


def with_defaults(model: type[BaseModel], name: str, doc: str, defaults: dict) -> type[BaseModel]:
    """A subclass of `model` with other defaults; every field keeps its type, range and description."""
    fields = model.model_fields
    changed = {key: (Annotated[fields[key].annotation, fields[key]], value) for key, value in defaults.items()}
    return create_model(name, __base__=model, __module__=__name__, __doc__=doc, **changed)


# model_core's TrainConfig is the one definition of the hyperparameters, their ranges and their documentation
Hyperparameters = with_defaults(TrainConfig, "Hyperparameters",
                                "Fine-tuning hyperparameters; an unknown name is a 422.", SERVICE_DEFAULTS)


class JobConfig(StrictBody):
    """A job's settings; the multipart `POST /jobs` takes this as its `config` form field."""

    eval_fraction: float = Field(0.1, gt=0, le=0.5, description="Stratified share of the dataset held out for "
                                 "evaluation when no eval dataset is given, (0, 0.5].")
    base_model: str = Field("minilm-l6", min_length=1, description="A name from GET /base-models, or a directory.")
    name: str | None = Field(None, max_length=255)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class JobCreate(JobConfig):
    dataset_id: str
    eval_dataset_id: str | None = None


class Progress(BaseModel):
    step: int
    total_steps: int | None = Field(description="Fixed when the job starts; null before.")
    epoch: float = Field(description="Fractional epochs done.")
    fraction: float = Field(description="step / total_steps; 1 when succeeded.")


class JobMetrics(BaseModel):
    train_loss: float | None = None
    eval_loss: float | None = None
    eval_accuracy: float | None = None
    eval_macro_f1: float | None = None


class AutoChoice(BaseModel):
    value: int | float | str | None = Field(description='What "auto" became.')
    reason: str = Field(description="Why, in one line.")


class JobOut(BaseModel):
    id: str
    name: str | None
    kind: Literal["train", "evaluate"] = Field(description="train: a fine-tuning job (model_id: the model it "
                                               "trained); evaluate: an evaluation of model_id on dataset_id.")
    status: JobStatus
    dataset_id: str | None
    eval_dataset_id: str | None
    base_model: str
    hyperparameters: Hyperparameters | None = Field(description='As requested: "auto" where auto_choices says '
                                                    "what it became; null for an evaluation job.")
    auto_choices: dict[str, AutoChoice] | None = Field(description='What each "auto" hyperparameter became and '
                                                       "why; null until the job starts.")
    progress: Progress
    metrics: JobMetrics
    model_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    device: str | None
    warnings: list[WarningOut] | None = Field(description="The data checks of the job's rows: the datasets' "
                                              "warnings, what dedupe dropped, evaluation rows that repeat a training "
                                              "text; null until the job starts. At its end, the model's quality: "
                                              "below_majority_baseline when it does not clearly beat always "
                                              "answering the most common label.")
    evaluation_url: str | None = Field(None, description="Where the model's held-out evaluation report is (GET); "
                                       "null until the job succeeded.")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        if job.status == JobStatus.succeeded:
            fraction = 1.0
        else:
            fraction = job.step / job.total_steps if job.total_steps else 0.0
        return cls(
            id=job.id, name=job.name, kind=job.kind, status=job.status, dataset_id=job.dataset_id,
            eval_dataset_id=job.eval_dataset_id, base_model=job.base_model,
            hyperparameters=Hyperparameters(**job.hyperparameters) if job.kind == "train" else None,
            auto_choices=job.auto_choices,
            progress=Progress(step=job.step, total_steps=job.total_steps, epoch=job.epoch, fraction=fraction),
            metrics=JobMetrics(**(job.metrics or {})), model_id=job.model_id, error=job.error,
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, device=job.device,
            warnings=job.warnings,
            evaluation_url=f"/models/{job.model_id}/evaluation" if job.kind == "train" and job.model_id else None,
        )


class TrainPoint(BaseModel):
    step: int
    epoch: float
    loss: float
    learning_rate: float | None
    time: datetime


class EvalPoint(BaseModel):
    step: int
    epoch: float
    loss: float
    accuracy: float | None
    macro_f1: float | None


def metric_point_out(point: MetricPoint) -> TrainPoint | EvalPoint:
    if point.kind == "train":
        return TrainPoint(step=point.step, epoch=point.epoch, loss=point.loss, learning_rate=point.learning_rate,
                          time=point.time)
    return EvalPoint(step=point.step, epoch=point.epoch, loss=point.loss, accuracy=point.accuracy,
                     macro_f1=point.macro_f1)


class JobMetricsHistory(BaseModel):
    train: list[TrainPoint]
    eval: list[EvalPoint]


# --- evaluations and deployments ----------------------------------------------------------------------------------

class EvaluationCreate(StrictBody):
    dataset_id: str = Field(description="A labeled dataset whose labels are all the model's.")


class Delta(BaseModel):
    a: float | None
    b: float | None
    delta: float | None = Field(description="b - a; null when either is.")


class ClassDelta(BaseModel):
    label: str
    support: int | None = Field(description="Rows of the dataset with this label.")
    precision: Delta
    recall: Delta
    f1: Delta


class Comparison(BaseModel):
    accuracy: Delta
    macro_f1: Delta
    per_class: list[ClassDelta]


class EvaluationComparison(Comparison):
    a: EvaluationOut
    b: EvaluationOut


class DeployRequest(StrictBody):
    """The promotion gate; no body (or require_better_than_deployed false) deploys as before."""

    require_better_than_deployed: bool = Field(False, description="Evaluate this model and the deployed one on "
                                               "on_dataset and refuse (409, with the per-class deltas) unless this "
                                               "one's macro-F1 is at least the deployed one's and no class's F1 "
                                               "drops by more than max_class_drop.")
    on_dataset: str | None = Field(None, description="The dataset id both models are evaluated on (their stored "
                                   "evaluations on it are reused).")
    max_class_drop: float = Field(DEFAULT_MAX_CLASS_DROP, ge=0, le=1, description="Largest drop of one class's F1 "
                                  "the gate accepts.")

    @model_validator(mode="after")
    def _dataset_with_gate(self) -> DeployRequest:
        if self.require_better_than_deployed != (self.on_dataset is not None):
            raise ValueError("require_better_than_deployed and on_dataset go together: the gate compares the models "
                             "on that dataset")
        return self


class DeploymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    model_id: str | None = Field(description="The model deployed; null once deleted.")
    previous_model_id: str | None = Field(description="The model deployed before it; null when none was.")
    reason: Literal["manual", "auto", "rollback"]
    detail: dict | None = Field(description="The gate's comparison (passed, reasons, max_class_drop, comparison: "
                                "per-class deltas) when one ran; what AUTO_DEPLOY decided for an auto deployment.")
    created_at: datetime


# --- operations ----------------------------------------------------------------------------------------------------

class Health(BaseModel):
    status: str


class BaseModelOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    path: str
    description: str | None = None
