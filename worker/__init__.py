"""Celery worker: the app (celery_app) and the fine-tuning task (tasks)."""
