"""Every environment variable the service reads, in one pydantic-settings class.

The README's configuration table documents each field; tests check the two agree.
"""
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_core.config import Device, QuantizeMode


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field(
        "sqlite:///data/app.db",
        description="SQLAlchemy URL of the job/metrics store: sqlite:///relative.db, "
        "sqlite:////absolute.db or postgresql+psycopg://user@host/db.",
    )
    celery_broker_url: str | None = Field(
        None,
        description="Celery broker, e.g. redis://127.0.0.1:6379/0. Unset: the embedded "
        "default, a local worker process fed through kombu's filesystem transport under ARTIFACT_DIR/broker/.",
    )
    celery_queue: str = Field("training", description="Celery queue the jobs are sent to and the worker consumes.")
    artifact_dir: Path = Field(Path("data"), description="Where uploads, checkpoints and models live.")
    api_keys: str | None = Field(
        None,
        description='Comma-separated "key:role" pairs, role admin or predict. Unset: no auth.',
    )
    max_upload_mb: float = Field(100, gt=0, description="Largest accepted upload, in MiB.")
    host: str = Field("127.0.0.1", description="Address `make run` binds to.")
    port: int = Field(8000, description="Port `make run` listens on.")

    # serving
    max_batch_tokens: int = Field(
        512, gt=0, description="Token budget of one /predict batch (batch size x its longest input)."
    )
    max_batch_wait_ms: float = Field(2, ge=0, description="Longest a /predict request waits for others to batch with.")
    max_queue_inputs: int = Field(4096, gt=0, description="Inputs waiting for /predict beyond which it answers 503.")
    model_cache_size: int = Field(2, gt=0, description="Fine-tuned models kept loaded for /predict.")
    predict_quantize: QuantizeMode | None = Field(
        None, description="int8: dynamic int8 quantization of Linear layers; unset: float32."
    )
    predict_workers: int | None = Field(
        None, gt=0, description="Forward passes /predict runs at once, each model in as many replica processes; "
        "unset: one per core."
    )
    torch_threads: int | None = Field(
        None, gt=0, description="torch intra-op threads of each /predict forward pass; unset: cores / PREDICT_WORKERS."
    )

    # worker
    job_lease_seconds: float = Field(
        60, gt=0, description="A running job whose worker heartbeat is older than this is taken over."
    )
    device: Device = Field("auto", description="Training device: auto (cuda when present), cpu or cuda.")
    auto_deploy: Literal["first", "if_better", "never"] = Field(
        "if_better", description="What a finished training job deploys: first: its model when none is deployed; "
        "if_better: that, or over the deployed model when both have the same labels and the promotion gate passes "
        "on the job's held-out rows, both models evaluated on them; never: nothing."
    )


@lru_cache
def load_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()


def describe_invalid_settings(error: ValidationError) -> str:
    """One line naming each environment variable that Settings refused, why, and the value given."""
    return "; ".join(f"{'.'.join(map(str, problem['loc'])).upper()}: {problem['msg']} (got {problem['input']!r})"
                     for problem in error.errors())
