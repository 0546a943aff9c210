"""Celery worker: the app (celery_app) and the tasks (tasks): fine-tuning jobs (training.run_job) and evaluation
jobs (evaluation.run_evaluation_job)."""
