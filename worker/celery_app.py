"""The worker's Celery app: the job queue's app (app.queue, configured from the environment) with the worker's
tasks. `celery -A worker.celery_app worker` loads it."""
from app.queue import make_celery
from app.settings import load_settings

app = make_celery(load_settings())
app.conf.include = ["worker.tasks"]  # the api never imports them: it sends tasks by name
app.conf.worker_pool = "worker.prefork:TaskPool"  # prefork, replacing a job's exited child at once
