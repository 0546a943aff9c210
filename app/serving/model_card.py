"""The model card: a README.md generated into each model download from the store (the model, its job and dataset,
its decision settings as they are now) and its held-out evaluation report, so it always says what the downloaded
model does when served."""
from __future__ import annotations

import json
from pathlib import Path

from app.db.models import Dataset, Evaluation, Job, ModelRecord
from model_core.checkpoint import CheckpointError, read_temperature, read_thresholds
from model_core.config import MULTI_LABEL

MODEL_CARD_FILE = "README.md"  # in the download, beside config.json


def _figure(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a" if value is None else str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_figure(cell) for cell in row) + " |" for row in rows)]


def _data_section(job: Job | None, dataset: Dataset | None) -> list[str]:
    if dataset is None:
        return ["The training dataset is no longer stored."]
    lines = [f"Dataset `{dataset.name}` (`{dataset.filename}`, {dataset.format}): {dataset.n_rows} rows, sha256 "
             f"`{dataset.sha256}`" + (", multi-label" if dataset.multi_label else "") + ".", ""]
    lines += _table(["label", "rows"], [[label, count] for label, count in dataset.labels.items()])
    if job is not None:
        held = (f"a stratified {job.eval_fraction:.0%} of these rows, held out from training"
                if job.eval_dataset_id is None else f"dataset `{job.eval_dataset_id}`")
        lines += ["", f"Evaluated (and the best checkpoint chosen) on {held}."]
    return lines


def _hyperparameter_section(job: Job | None) -> list[str]:
    if job is None:
        return ["Unknown (the training job is no longer stored)."]
    choices = job.auto_choices or {}
    rows = [[name, json.dumps(value) if name not in choices else
             f"{json.dumps(choices[name]['value'])} (auto: {choices[name]['reason']})"]
            for name, value in job.hyperparameters.items()]
    return _table(["hyperparameter", "value"], rows)


def _evaluation_section(report: dict | None) -> list[str]:
    if report is None:
        return ["This model has no held-out evaluation report."]
    lines = [f"On {report['n_rows']} held-out rows:", ""]
    lines += _table(["metric", "value"], [[name, value] for name, value in report["metrics"].items()])
    if report.get("cross_fitted_metrics"):  # reports stored before cross-fitting lack the key
        lines += ["", "The thresholds were tuned on these rows, which flatters the figures above. Cross-fitted (each "
                  "fifth of the rows decided at thresholds tuned on the other four):", ""]
        lines += _table(["metric", "value"], [[name, value] for name, value in report["cross_fitted_metrics"].items()])
    if report["baselines"] is not None:
        lines += ["", "Baselines on the same rows (fitted on the "
                  f"{'training rows' if report['baselines']['majority']['fitted_on'] == 'train' else 'other folds'}):",
                  ""]
        lines += _table(["baseline", "accuracy", "macro_f1"],
                        [[name, figures["accuracy"], figures["macro_f1"]]
                         for name, figures in report["baselines"].items()])
    lines += ["", "Per class:", ""]
    lines += _table(["label", "precision", "recall", "f1", "support"],
                    [[row["label"], row["precision"], row["recall"], row["f1"], row["support"]]
                     for row in report["per_class"]])
    if report["warnings"]:
        lines += ["", *(f"- **Warning** ({warning['kind']}): {warning['message']}" for warning in report["warnings"])]
    return lines


def _calibration_section(record: ModelRecord, model_dir: Path, report: dict | None) -> list[str]:
    if record.problem_type == MULTI_LABEL:
        return ["Multi-label scores are each label's sigmoid, not temperature-scaled: each label's threshold is "
                "tuned on these probabilities (below)."]
    try:
        temperature = read_temperature(model_dir)
    except CheckpointError as error:
        return [f"The temperature cannot be read: {error}"]
    lines = [f"Temperature T = {temperature:.4f} (`calibration.json`), fitted on the held-out logits. The service's "
             "probabilities are `softmax(logits / T)`; with transformers:", "",
             "```python", "probabilities = (model(**inputs).logits / T).softmax(dim=-1)", "```"]
    if report is not None:
        calibration = report["calibration"]
        how = (" (cross-fitted: each fifth of the held-out rows scaled by a T fitted on the other four)"
               if calibration.get("cross_fitted") else "")  # reports stored before cross-fitting lack the key
        lines += ["", f"Expected calibration error (10 bins): {calibration['ece_before']:.4f} before, "
                  f"{calibration['ece_after']:.4f} after temperature scaling{how}."]
    return lines


def _decision_section(record: ModelRecord, model_dir: Path, report: dict | None) -> list[str]:
    if record.problem_type == MULTI_LABEL:
        try:
            tuned = dict(zip(record.labels, read_thresholds(model_dir, record.labels), strict=True))
        except CheckpointError:
            tuned = {}
        hand_set = record.thresholds or {}
        rows = [[label, tuned.get(label), hand_set.get(label), hand_set.get(label, tuned.get(label))]
                for label in record.labels]
        return ["A label is predicted when its probability reaches its threshold:", "",
                *_table(["label", "tuned", "set by hand", "used"], rows)]
    if record.min_confidence is None:
        lines = ["No `min_confidence`: the service always answers the likeliest label."]
    else:
        lines = [f"`min_confidence` = {record.min_confidence}: below this top probability the service answers "
                 '`"label": null, "abstained": true`.']
    if report is not None and report["coverage"] is not None:
        lines += ["", "Coverage and accuracy on the held-out rows at several `min_confidence` values:", "",
                  *_table(["min_confidence", "coverage", "accuracy"],
                          [[row["min_confidence"], row["coverage"], row["accuracy"]] for row in report["coverage"]])]
    return lines


def model_card(record: ModelRecord, job: Job | None, dataset: Dataset | None, evaluation: Evaluation | None) -> str:
    """The README.md of the model's download (markdown): base model, training data, hyperparameters (with what
    "auto" chose), held-out figures and per-class table, calibration, decision settings, intended use and limits."""
    model_dir = Path(record.path)
    report = evaluation.report if evaluation is not None else None
    kind = ("multi-label: any number of labels per input" if record.problem_type == MULTI_LABEL
            else "single-label: one label per input")
    sections = {
        "Model": [f"Text classifier `{record.id}` ({kind}), fine-tuned from base model `{record.base_model}`"
                  + (f" by job `{record.job_id}`" if record.job_id else "") + f", registered "
                  f"{record.created_at:%Y-%m-%d %H:%M} UTC.", "",
                  f"Labels (class-id order): {', '.join(f'`{label}`' for label in record.labels)}.", "",
                  "A Hugging Face directory: `config.json`, `model.safetensors` and the tokenizer files load with "
                  "transformers (a mean-pooled model with `trust_remote_code=True`); `evaluation.json` is the full "
                  "evaluation report."],
        "Training data": _data_section(job, dataset),
        "Hyperparameters": _hyperparameter_section(job),
        "Evaluation": _evaluation_section(report),
        "Calibration": _calibration_section(record, model_dir, report),
        "Decision settings": _decision_section(record, model_dir, report),
        "Intended use and limits": [
            "Classifying texts like the training data into the labels above. It knows no other labels: every "
            "input gets one of them (or abstains below `min_confidence`). The figures above hold for data like the "
            "held-out rows; on texts of another domain, length or language expect less, and evaluate it on labeled "
            "rows of your own (POST /models/{id}/evaluations) before relying on it. Texts beyond the model's "
            "`max_len` tokens are truncated. The evaluation report lists the most confident mistakes with their "
            "texts: rows of the evaluation data travel with this download."],
    }
    lines = [f"# Model card: {record.id}", ""]
    for title, body in sections.items():
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)
