"""Celery tasks. The worker imports this module (and so torch) in its parent process before forking children;
nothing here touches CUDA until a child runs a job."""
import logging
import os

import sklearn.feature_extraction.text  # noqa: F401  model_core.report's baselines import scikit-learn at a job's
import sklearn.linear_model  # noqa: F401  end (~1 s, most of a tiny job's end); load it once, before forking
import sklearn.model_selection  # noqa: F401
import sklearn.multiclass  # noqa: F401
import torch._dynamo  # noqa: F401  torch.optim imports it at the first step (seconds); load it once, before forking
from billiard import current_process
from celery.signals import worker_process_init

from app.db.session import make_session_factory
from app.queue import EVALUATE_TASK, FINETUNE_TASK
from app.settings import load_settings
from worker.celery_app import app
from worker.evaluation import run_evaluation_job
from worker.training import run_job

log = logging.getLogger(__name__)


@worker_process_init.connect
def _one_gpu_per_child(**_) -> None:
    """With CUDA_VISIBLE_DEVICES="0,1" and --concurrency 2, child i trains on GPU i."""
    gpus = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu.strip()]
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[(current_process().index or 0) % len(gpus)]


@app.task(name=FINETUNE_TASK)  # acks_late and reject_on_worker_lost: app.queue's settings
def finetune(job_id: str) -> None:
    """Runs (or resumes) the fine-tuning job `job_id`; a delivery for a job running elsewhere is dropped."""
    settings = load_settings()
    run_job(job_id, settings, make_session_factory(settings.database_url))


@app.task(name=EVALUATE_TASK)
def evaluate(job_id: str) -> None:
    """Runs (again, from its start) the evaluation job `job_id`; a delivery for a job running elsewhere is dropped."""
    settings = load_settings()
    run_evaluation_job(job_id, settings, make_session_factory(settings.database_url))
