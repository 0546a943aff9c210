"""Evaluating a model on labeled data outside its training job, and the deployments that rest on it: what the
api and the worker share (neither route nor task code). Reports are model_core.report's; comparisons, app.gate's.

- check_evaluable: what an evaluation of a model on a dataset refuses before anything runs or is stored.
- gate_deploy: the promotion gate of `POST /models/{id}/deploy`, on a dataset, stored reports reused.
- auto_deploy: what a finished training job deploys, by AUTO_DEPLOY.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.db import evaluations, store
from app.db.models import Dataset, Evaluation, ModelRecord
from app.errors import DatasetFilesGone, DatasetNotFound, GateRefused, ModelUnloadable, Unprocessable
from app.gate import gate
from app.settings import Settings
from model_core.checkpoint import CheckpointError
from model_core.config import MULTI_LABEL
from model_core.data import AnyExample, DataError
from model_core.report import evaluate_model_dir
from model_core.train import resolve_device

# the deploy gate evaluates in the request up to this many rows per model; a larger dataset is evaluated by an
# evaluation job first (POST /models/{id}/evaluations), whose stored report the gate reuses
INLINE_MAX_ROWS = 5000


def check_evaluable(model: ModelRecord, dataset: Dataset) -> None:
    """DatasetFilesGone (409) when the dataset's file was deleted; Unprocessable (422) when the dataset is of the
    other problem type than the model, or has labels the model lacks (named)."""
    if not Path(dataset.path).is_file():
        raise DatasetFilesGone(dataset.id)
    model_multi_label = model.problem_type == MULTI_LABEL
    if dataset.multi_label != model_multi_label:
        kinds = {True: "multi-label", False: "single-label"}
        raise Unprocessable(f"dataset {dataset.id} is {kinds[dataset.multi_label]} but model {model.id} is "
                            f"{kinds[model_multi_label]}")
    unknown = [label for label in dataset.labels if label not in model.labels]
    if unknown:
        raise Unprocessable(f"dataset {dataset.id} has label(s) {unknown} that model {model.id} lacks (its labels: "
                            f"{model.labels})")


def report_of(model: ModelRecord, examples: Sequence[AnyExample], device: str) -> dict:
    """model_core's report of the registered model on the examples, deciding as /predict does (its hand-set
    thresholds over the tuned ones); ModelUnloadable (409) when its files cannot be loaded."""
    try:
        return evaluate_model_dir(model.path, examples, device=str(resolve_device(device)),
                                  thresholds=model.thresholds)
    except CheckpointError as error:
        raise ModelUnloadable(f"model {model.id} cannot be loaded: {error}") from error


def _dataset_evaluations(session: Session, models: list[ModelRecord], dataset: Dataset,
                         device: str) -> list[Evaluation]:
    """Each model's stored report on the dataset, the missing ones computed here and stored (at most
    INLINE_MAX_ROWS rows: Unprocessable, nothing computed, beyond)."""
    stored = [evaluations.on_dataset(session, model.id, dataset.id) for model in models]
    missing = [model.id for model, evaluation in zip(models, stored, strict=True) if evaluation is None]
    if missing and dataset.n_rows > INLINE_MAX_ROWS:
        raise Unprocessable(f"dataset {dataset.id} has {dataset.n_rows} rows, more than the {INLINE_MAX_ROWS} the "
                            f"gate evaluates in the request: evaluate model(s) {missing} on it first with POST "
                            "/models/{id}/evaluations; the gate reuses their reports")
    examples = store.read_dataset(dataset).examples if missing else []
    computed = [evaluation or evaluations.add(session, model_id=model.id, report=report_of(model, examples, device),
                                              source=evaluations.ON_DATASET, dataset_id=dataset.id)
                for model, evaluation in zip(models, stored, strict=True)]
    session.commit()
    return computed


def gate_deploy(session: Session, candidate: ModelRecord, dataset_id: str, max_class_drop: float,
                settings: Settings) -> dict | None:
    """The promotion gate: the deployed model and `candidate` on the dataset (stored "dataset" reports reused,
    missing ones computed and stored). Returns the Deployment's detail when `candidate` may be deployed (None when
    it is the deployed model); GateRefused (409) with the same detail and the reasons when it may not. 404 for an
    unknown dataset; check_evaluable's 409/422 for either model."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFound(dataset_id)
    check_evaluable(candidate, dataset)
    deployed = store.deployed_model(session)
    if deployed is not None and deployed.id == candidate.id:
        return None
    if deployed is None:
        return {"on_dataset": dataset.id, "deployed_model_id": None, "passed": True,
                "reasons": [], "note": "no model was deployed: nothing to compare with"}
    check_evaluable(deployed, dataset)
    deployed_evaluation, candidate_evaluation = _dataset_evaluations(session, [deployed, candidate], dataset,
                                                                     settings.device)
    detail = {"on_dataset": dataset.id, "deployed_model_id": deployed.id,
              "deployed_evaluation_id": deployed_evaluation.id, "candidate_evaluation_id": candidate_evaluation.id,
              **gate(deployed_evaluation.report, candidate_evaluation.report, max_class_drop)}
    if not detail["passed"]:
        raise GateRefused({"message": f"model {candidate.id} does not beat the deployed model {deployed.id} on "
                           f"dataset {dataset.id}: " + "; ".join(detail["reasons"]), **detail})
    return detail


@dataclass
class AutoDeployment:
    """What auto_deploy decided: the "auto" Deployment's `detail` (None: not deployed), the `outcome` in one line,
    and a `warning` for the job when if_better kept its model from replacing the deployed one."""

    detail: dict | None
    outcome: str
    warning: dict | None = None


def auto_deploy(session: Session, report: dict | None, held_out: Sequence[AnyExample], job_id: str,
                settings: Settings) -> AutoDeployment:
    """Whether a training job's new model is to be deployed, as AUTO_DEPLOY says. `report` is the model's held-out
    report, on `held_out`.

    never: not. first: when no model is deployed. if_better: that, or over the deployed model when both have the
    same label set and problem type, and the gate passes (app.gate, default max_class_drop) with both evaluated on
    the same rows: the job's held-out rows, on which the deployed model is evaluated here.
    """
    policy = settings.auto_deploy
    if policy == "never":
        return AutoDeployment(None, "not deployed (AUTO_DEPLOY=never)")
    deployed = store.deployed_model(session)
    if deployed is None:
        return AutoDeployment({"policy": policy, "deployed_model_id": None}, "deployed: no model was")
    if policy == "first":
        return AutoDeployment(None, f"not deployed: model {deployed.id} is (AUTO_DEPLOY=first)")
    if report is None:
        return _kept_out(deployed, "it has no held-out report to compare")
    if set(deployed.labels) != set(report["labels"]) or deployed.problem_type != report["problem_type"]:
        return _kept_out(deployed, "its labels differ from the deployed model's")
    try:
        deployed_report = report_of(deployed, held_out, settings.device)
    except (ModelUnloadable, DataError) as error:
        return _kept_out(deployed, f"the deployed model could not be evaluated ({error})")
    detail = {"policy": policy, "compared_on": f"the {len(held_out)} held-out rows of job {job_id}",
              "deployed_model_id": deployed.id, **gate(deployed_report, report)}
    if not detail["passed"]:
        return _kept_out(deployed, "; ".join(detail["reasons"]))
    return AutoDeployment(detail, f"deployed over model {deployed.id}: the gate passed on the job's held-out rows")


def _kept_out(deployed: ModelRecord, why: str) -> AutoDeployment:
    outcome = f"not deployed over model {deployed.id} (AUTO_DEPLOY=if_better): {why}"
    return AutoDeployment(None, outcome, {"kind": "not_deployed", "message": outcome,
                                          "deployed_model_id": deployed.id})
