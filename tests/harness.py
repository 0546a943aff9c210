"""Helpers for the tests and the benchmarks: SST-2 subsets, a tiny random base model, store settings, and the
service's real processes (a Celery worker, `python -m app.cli serve`) driven from outside."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.db.migrate import upgrade_to_head
from app.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


REPO = Path(__file__).resolve().parents[1]


SHARED_DATA = REPO.parent / "shared" / "data"


POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


REDIS_URL = "redis://127.0.0.1:6379/0"


TERMINAL = ("succeeded", "failed", "cancelled")


TINY_HYPERPARAMETERS = {"epochs": 2, "batch_size": 8, "max_len": 32, "learning_rate": 1e-3}


def sst2_rows(n: int, seed: int = 0) -> list[str]:
    """n SST-2 training lines (label<TAB>sentence), both labels present, seeded."""
    lines = (SHARED_DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return random.Random(seed).sample(lines, n)


def write_sst2(path: Path, n: int, seed: int = 0) -> Path:
    path.write_text("label\tsentence\n" + "\n".join(sst2_rows(n, seed)) + "\n", encoding="utf-8")
    return path


def make_tiny_bert(out: Path) -> Path:
    """A randomly initialised 2-layer, 32-dim BERT with MiniLM's vocabulary, as a Hugging Face directory."""
    from transformers import BertConfig, BertModel

    from model_core.base_models import resolve_base_model

    out.mkdir(parents=True, exist_ok=True)
    vocab = resolve_base_model("minilm-l6") / "vocab.txt"
    shutil.copy(vocab, out / "vocab.txt")
    config = BertConfig(vocab_size=len(vocab.read_text(encoding="utf-8").splitlines()), hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return out


def sqlite_settings_for(root: Path, **overrides) -> Settings:
    settings = Settings(**{"database_url": f"sqlite:///{root / 'app.db'}", "artifact_dir": root / "artifacts",
                           "celery_broker_url": None, "api_keys": None, **overrides})
    upgrade_to_head(settings.database_url)
    return settings


def stored_files(settings: Settings) -> list[Path]:
    """Every file under the artifact dir except the broker's folder."""
    root = settings.artifact_dir
    return [p for p in root.rglob("*") if p.is_file() and "broker" not in p.relative_to(root).parts]


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


def wait_for_job(client, job_id: str, statuses=TERMINAL, timeout: float = 120, until=None) -> dict:
    """Polls GET /jobs/{id} until its status is in `statuses` (or `until(job)` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if (until(job) if until else job["status"] in statuses):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.2)


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
