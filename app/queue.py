"""The job queue: the Celery app's configuration, shared by the api (which only sends) and the worker
(worker.celery_app builds its app here, so the worker imports app and never the reverse).

Worker command (one per GPU, or one on CPU); it consumes the CELERY_QUEUE queue:
    celery -A worker.celery_app worker --concurrency 1 --loglevel INFO

With CELERY_BROKER_URL unset (the embedded default) the broker is kombu's filesystem transport under
ARTIFACT_DIR/broker/, and `python -m app.cli serve` starts that same worker command as a child process.
Importing this module never imports torch: the api sends tasks by name.
"""
from celery import Celery
from kombu import Queue

from app.settings import Settings

FINETUNE_TASK = "worker.tasks.finetune"
EVALUATE_TASK = "worker.tasks.evaluate"
TASK_OF_KIND = {"train": FINETUNE_TASK, "evaluate": EVALUATE_TASK}  # jobs.kind -> the task that runs it
VISIBILITY_TIMEOUT_S = 7 * 24 * 3600  # longer than any job: Redis redelivers an unacked task only after this
BROKER_TIMEOUT_S = 3


def broker_options(settings: Settings) -> tuple[str, dict]:
    if settings.celery_broker_url:
        return settings.celery_broker_url, {"visibility_timeout": VISIBILITY_TIMEOUT_S,
                                            "socket_connect_timeout": BROKER_TIMEOUT_S,
                                            "socket_timeout": BROKER_TIMEOUT_S}
    folder = (settings.artifact_dir / "broker").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {"data_folder_in": str(folder), "data_folder_out": str(folder),
                             "control_folder": str(folder / "control"), "polling_interval": 0.2}


def make_celery(settings: Settings) -> Celery:
    broker_url, transport_options = broker_options(settings)
    celery = Celery("finetune_service", broker=broker_url)
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_timeout=BROKER_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,  # where send_job sends
        task_queues=[Queue(settings.celery_queue)],  # what a worker started without -Q consumes
        task_acks_late=True,  # a job's message is acknowledged when the job ends, not when it starts
        task_reject_on_worker_lost=True,  # a killed child puts its message back
        task_ignore_result=True,  # state lives in the jobs table
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,  # a fresh child per job returns all its (GPU) memory
        worker_hijack_root_logger=False,
    )
    return celery


def send_job(celery: Celery, job_id: str, kind: str) -> None:
    """Sends the job to the task of its kind (jobs.kind)."""
    celery.send_task(TASK_OF_KIND[kind], args=[job_id], retry=False)


def check_broker(celery: Celery) -> None:
    """Raises when the broker does not answer."""
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)

