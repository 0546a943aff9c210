"""The service's real processes driven from outside: a Celery worker and `python -m app.cli serve`."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from app.settings import Settings
from testkit import REPO


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to see `settings`.

    One torch thread: the tiny jobs gain nothing from more, and on a shared, oversubscribed machine OpenMP's
    spin-waiting makes a 2-thread step of the tiny model ~50x slower.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(name.upper(), None)
        else:
            env[name.upper()] = str(value)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WorkerProcess:
    """`celery -A worker.celery_app worker` as a subprocess (own process group), restartable."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings, self.log_path = settings, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from app.cli import worker_command

        log = self.log_path.open("ab")
        self.process = subprocess.Popen(worker_command(), cwd=REPO, env=settings_env(self.settings),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "celery worker did not become ready"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the whole worker (parent and children): the machine died."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def running_worker(settings: Settings, log_path: Path) -> Iterator[WorkerProcess]:
    """A started WorkerProcess on `settings`, stopped when the generator closes (a fixture's body)."""
    worker = WorkerProcess(settings, log_path)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


class ServeProcess:
    """`python -m app.cli serve` on a free port with `settings` (the embedded default when no broker is set)."""

    def __init__(self, settings: Settings, log_path: Path):
        self.env = {**settings_env(settings), "HOST": "127.0.0.1", "PORT": str(free_port())}
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.env['PORT']}"
        self.process: subprocess.Popen | None = None

    def start(self) -> httpx.Client:
        self.process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=REPO, env=self.env,
                                        stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if client.get("/health").status_code == 200:
                    return client
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)

    def terminate(self, timeout: float) -> int:
        """SIGTERM; the exit status (TimeoutExpired past `timeout` seconds)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
