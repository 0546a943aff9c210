"""`python -m app.cli migrate` applies the migrations; `python -m app.cli serve` migrates and serves.

serve with CELERY_BROKER_URL unset is the embedded default: the store is SQLite, the broker kombu's filesystem
transport under ARTIFACT_DIR/broker/, and the same Celery worker command runs as a child process, stopped with
the server. Jobs the previous run left queued or running are queued again (resuming from their checkpoints).
With CELERY_BROKER_URL set, serve runs the api alone and expects `celery -A worker.celery_app worker` elsewhere.
"""
import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys

import uvicorn
from pydantic import ValidationError

from app.db import jobs
from app.db.migrate import upgrade_to_head
from app.db.session import make_session_factory
from app.main import create_app
from app.queue import make_celery, send_job
from app.settings import Settings, describe_invalid_settings, load_settings

log = logging.getLogger("app.cli")

GRACEFUL_SHUTDOWN_S = 3  # open requests (event streams) get this long; SIGTERM must end us within 10 s
WORKER_STOP_S = 4
PR_SET_PDEATHSIG = 1


def worker_command() -> list[str]:
    """The embedded worker: `make worker`'s command (its queue is CELERY_QUEUE, from the environment) without
    the cluster chatter a single local worker does not need."""
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--concurrency", "1",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]


def _die_with_parent() -> None:
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_embedded_worker(settings: Settings) -> subprocess.Popen:
    """Requeues what the last run left unfinished, then starts the local worker (its own process group)."""
    with make_session_factory(settings.database_url)() as session:
        queued = jobs.recover_interrupted_jobs(session)
    celery = make_celery(settings)
    with celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(settings.celery_queue)
    for job_id, kind in queued:
        send_job(celery, job_id, kind)
    if queued:
        log.warning("queued again %d unfinished job(s) from the last run", len(queued))
    return subprocess.Popen(worker_command(), preexec_fn=_die_with_parent)


def stop_embedded_worker(worker: subprocess.Popen) -> None:
    """Cold shutdown (the running job stops; it resumes from its last checkpoint next start), then SIGKILL."""
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGQUIT)
    try:
        worker.wait(WORKER_STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _exit_cleanly(signum, _frame) -> None:
    """SIGTERM/SIGINT outside uvicorn's own handling (uvicorn re-raises them once it has shut down): a normal exit,
    so serve's cleanup (stopping the embedded worker) runs."""
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    upgrade_to_head(settings.database_url)
    worker = start_embedded_worker(settings) if settings.celery_broker_url is None else None
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    finally:
        if worker is not None:
            stop_embedded_worker(worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate", "serve"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ValidationError as error:
        print(f"error: invalid settings: {describe_invalid_settings(error)}", file=sys.stderr)
        return 1
    try:
        if args.command == "migrate":
            upgrade_to_head(settings.database_url)
        else:
            serve(settings)
    except Exception as error:  # a one-line reason, not a traceback: bad DATABASE_URL, unreachable store, ...
        print(f"error: {type(error).__name__}: {error}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
