"""Serving benchmark: /predict over HTTP under 32 concurrent clients vs the in-process ceiling and vs a naive
transformers pipeline server, each timed in ROUNDS rounds taken in turn; batch-1 latency; int8 vs fp32 speed and
SST-2 dev accuracy.

`python -m bench.serving [--quick]` or through `bench.run`. Each server is a real uvicorn process on a free port;
the clients (raw asyncio HTTP/1.1, in this process) share the machine's cores with it, as a co-located load
balancer would.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
import torch

from app.db.migrate import upgrade_to_head
from app.db.session import make_session_factory
from model_core.config import TrainConfig
from model_core.cpu import keep_freed_memory
from model_core.data import read_table
from model_core.predict import Predictor
from model_core.train import finetune
from testkit import REPO
from testkit.data import SHARED_DATA
from testkit.processes import free_port
from testkit.store import register_model_dir

SST2 = SHARED_DATA / "sst2"
CLIENTS = 32
CORES = len(os.sched_getaffinity(0))
RAW_BATCH = 32
ROUNDS = 3  # each times in process, over HTTP and the naive server in turn: a drift of the host's speed hits all
HTTP, NAIVE, CLIENT_CPU = "http", "naive", "client cpu"  # a round's measures besides the in-process layouts
SECTION = "serving"


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "metric": metric, "value": round(value, 4), "unit": unit, "note": note}


@contextmanager
def _uvicorn(app: str, env: dict[str, str], ready_path: str):
    """A uvicorn server process for `app` (a factory); yields its base URL once `ready_path` answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=REPO, env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start (exit code {process.returncode})")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _post_each(host: str, port: int, bodies: list[bytes], latencies: list[float]) -> None:
    """One keep-alive HTTP/1.1 connection posting each JSON body to /predict in turn, as lean as a load
    generator in C: the bytes are prepared, the response is read by its Content-Length and must be a 200."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for body in bodies:
            started = time.perf_counter()
            writer.write(b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            answer = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"/predict answered {head.splitlines()[0]!r}: {answer[:200]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _closed_loop(url: str, sentences: list[str], clients: int) -> tuple[float, list[float], float]:
    """`clients` concurrent clients, each with its own connection, sending one sentence per request until all
    are sent. Returns (sentences/s, per-request latencies in seconds, the clients' CPU seconds per second: what
    the load generator took from the cores the server runs on)."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"inputs": [sentence]}).encode() for sentence in sentences]
    latencies: list[float] = []
    await _post_each(host, int(port), [b'{"inputs": ["warm up"]}'], [])
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(_post_each(host, int(port), bodies[i::clients], latencies) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return len(sentences) / elapsed, latencies, (time.process_time() - cpu_started) / elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _raw_sentences_per_s(predictor: Predictor, sentences: list[str], workers: int) -> float:
    """In process, no HTTP, no queue: length-sorted batches of RAW_BATCH straight into the model, `workers`
    forward passes at once with the machine's cores split between them (as PREDICT_WORKERS does). Timed on a
    second round: the first one warms up (allocator, oneDNN kernels) as a server's first requests do."""
    pairs = [(sentence, None) for sentence in sentences]
    encodings = predictor.tokenize(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(encodings[i]))
    batches = [[pairs[i] for i in order[start:start + RAW_BATCH]] for start in range(0, len(order), RAW_BATCH)]
    torch.set_num_threads(max(1, CORES // workers))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(predictor.predict_proba, batches))
        return len(pairs) / _timed(lambda: list(pool.map(predictor.predict_proba, batches)))


def _layouts() -> dict[str, int]:
    """Forward passes at once, by name: one pass on every core (the issue's ceiling) and one single-threaded pass
    per core (PREDICT_WORKERS' default layout)."""
    return {f"1 pass x {CORES} threads": 1, f"{CORES} passes x 1 thread": CORES}


def _ceilings(predictor: Predictor, sentences: list[str]) -> dict[str, float]:
    """In-process throughput of each layout."""
    return {layout: _raw_sentences_per_s(predictor, sentences, workers) for layout, workers in _layouts().items()}


def _round(predictor: Predictor, url: str, naive_url: str, sentences: list[str], naive_sentences: list[str],
           ) -> dict[str, float]:
    """Every throughput measure once, back to back: the in-process ceilings, our server, the naive one."""
    speeds = _ceilings(predictor, sentences)
    speeds[HTTP], _, speeds[CLIENT_CPU] = asyncio.run(_closed_loop(url, sentences, CLIENTS))
    speeds[NAIVE], _, _ = asyncio.run(_closed_loop(naive_url, naive_sentences, CLIENTS))
    return speeds


def _accuracy(predictor: Predictor, sentences: list[str], labels: list[str]) -> float:
    probs = torch.cat([predictor.predict_proba([(s, None) for s in sentences[i:i + RAW_BATCH]])
                       for i in range(0, len(sentences), RAW_BATCH)])
    predicted = [predictor.labels[i] for i in probs.argmax(dim=1).tolist()]
    return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)


def _bench_model(out_dir: Path, n_train: int) -> tuple[Path, str]:
    """MiniLM fine-tuned for one short epoch on an SST-2 train subset."""
    train = read_table(SST2 / "train.tsv").examples[:n_train]
    config = TrainConfig(epochs=1, batch_size=32, max_len=64, learning_rate=1e-4)
    result = finetune(train, None, "minilm-l6", out_dir.parent / "train", config)
    shutil.move(result.model_dir, out_dir)
    return out_dir, f"MiniLM fine-tuned 1 epoch on {n_train} SST-2 train sentences"


def naive_app():
    """The naive way: a transformers pipeline behind FastAPI, one request at a time (the handler blocks)."""
    from fastapi import FastAPI
    from transformers import pipeline

    # trust_remote_code: a mean-pooled model's class is in its directory (README, "Pooling")
    classify = pipeline("text-classification", model=os.environ["NAIVE_MODEL_DIR"], device="cpu",
                        trust_remote_code=True)
    app = FastAPI()

    @app.post("/predict")
    async def predict(body: dict) -> dict:
        return {"predictions": classify(body["inputs"], truncation=True)}

    return app


@dataclass
class Sizes:
    sentences: int | None  # SST-2 dev sentences for the throughput runs (None: all 872)
    naive_sentences: int | None  # the naive server is slow: fewer in quick runs
    latency_requests: int
    accuracy_sentences: int | None
    train_sentences: int  # SST-2 train sentences the bench model is fine-tuned on


QUICK, FULL = Sizes(96, 32, 30, 200, 256), Sizes(None, None, 300, None, 2000)


def run(quick: bool) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        return _run(work, QUICK if quick else FULL)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, sizes: Sizes) -> list[dict]:
    dev = read_table(SST2 / "dev.tsv").examples
    sentences = [example.text for example in dev][: sizes.sentences]
    model_id = uuid.uuid4().hex
    artifacts, database_url = work / "artifacts", f"sqlite:///{work / 'app.db'}"
    model_dir, model_note = _bench_model(artifacts / "models" / model_id, sizes.train_sentences)
    env = {"DATABASE_URL": database_url, "ARTIFACT_DIR": str(artifacts), "HF_HUB_OFFLINE": "1"}
    upgrade_to_head(database_url)
    register_model_dir(make_session_factory(database_url), model_dir, deploy=True)
    rows = []

    keep_freed_memory()  # as each replica does
    fp32 = Predictor.load(model_dir)
    naive_env = {"NAIVE_MODEL_DIR": str(model_dir), "HF_HUB_OFFLINE": "1"}
    with (_uvicorn("app.main:create_app", env, "/health") as url,
          _uvicorn("bench.serving:naive_app", naive_env, "/docs") as naive_url):
        rounds = [_round(fp32, url, naive_url, sentences, sentences[: sizes.naive_sentences])
                  for _ in range(ROUNDS)]
        _, latencies, _ = asyncio.run(_closed_loop(url, sentences[: sizes.latency_requests], clients=1))

    def middle(measure: str, over: str | None = None) -> float:
        """The median over the rounds of a measure, or of its ratio to another taken in the same round."""
        return median(round_[measure] / (round_[over] if over else 1) for round_ in rounds)

    ceilings = {layout: middle(layout) for layout in _layouts()}
    note = f"median of {ROUNDS} rounds, each also timing the HTTP servers"
    for layout, speed in ceilings.items():
        rows.append(_row(f"raw in-process batched throughput, {layout}", speed, "sentences/s",
                         f"batches of {RAW_BATCH}, length-sorted, {len(sentences)} SST-2 dev sentences; {note}"))
    served = middle(HTTP)
    rows.append(_row(f"/predict over HTTP, {CLIENTS} concurrent clients", served, "sentences/s",
                     " and ".join(f"{middle(HTTP, layout):.2f}x {layout}" for layout in ceilings)
                     + f" in process (median of the rounds' ratios); the clients took {middle(CLIENT_CPU):.2f}"
                     " of a core"))
    rows.append(_row("/predict batch-1 latency p50", 1000 * _percentile(latencies, 0.5), "ms", "one client"))
    rows.append(_row("/predict batch-1 latency p99", 1000 * _percentile(latencies, 0.99), "ms",
                     f"{len(latencies)} sequential requests"))
    rows.append(_row(f"naive pipeline server, {CLIENTS} concurrent clients", middle(NAIVE), "sentences/s",
                     f"ours is {middle(HTTP, NAIVE):.2f}x (median of the rounds' ratios)"))

    int8 = Predictor.load(model_dir, quantize="int8")
    int8_speeds = _ceilings(int8, sentences)
    scored = dev[: sizes.accuracy_sentences]
    texts, gold = [e.text for e in scored], [e.label for e in scored]
    fp32_accuracy, int8_accuracy = _accuracy(fp32, texts, gold), _accuracy(int8, texts, gold)
    best = max(ceilings, key=ceilings.get)
    rows.append(_row("int8 vs fp32 in-process speed-up", int8_speeds[best] / ceilings[best], "x",
                     f"int8 {int8_speeds[best]:.1f} sentences/s, {best}"))
    rows.append(_row("SST-2 dev accuracy fp32", fp32_accuracy, "fraction", model_note))
    rows.append(_row("SST-2 dev accuracy change int8 - fp32", int8_accuracy - fp32_accuracy, "fraction",
                     f"int8 {int8_accuracy:.4f}, {len(gold)} SST-2 dev sentences"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(json.dumps(row))
