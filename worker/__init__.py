"""Celery worker: the app (celery_app) and the fine-tuning task (tasks), which runs training.run_job."""
