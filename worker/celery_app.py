"""The worker's Celery app, configured from the environment (see worker.queue for the command and settings)."""
from app.settings import get_settings
from worker.queue import make_celery

app = make_celery(get_settings())
