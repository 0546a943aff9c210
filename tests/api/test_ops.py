"""/health, /ready (and its 503s), /base-models, /docs and /redoc with their assets, and the OpenAPI schema."""
import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from testkit.store import sqlite_settings_for


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/ready")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_is_503_naming_the_queue_and_the_store(tmp_path):
    settings = sqlite_settings_for(tmp_path, celery_broker_url="redis://127.0.0.1:1/0")
    settings = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "store:" in detail and "queue:" in detail


def test_job_the_broker_cannot_take_is_503_and_failed_not_left_queued(tmp_path, train_tsv, tiny_base_model):
    settings = sqlite_settings_for(tmp_path, celery_broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        dataset_id = client.post("/datasets", files={"file": ("t.tsv", train_tsv.read_bytes())}).json()["id"]
        response = client.post("/jobs", json={"dataset_id": dataset_id, "base_model": str(tiny_base_model),
                                              "hyperparameters": {"max_len": 32}})
        assert response.status_code == 503 and "queue" in response.json()["detail"]
        [job] = client.get("/jobs").json()["items"]
    assert job["status"] == "failed" and "could not queue" in job["error"]


def test_base_models_lists_the_installed_minilm(client):
    names = [model["name"] for model in client.get("/base-models").json()]
    assert "minilm-l6" in names


def test_docs_and_openapi_document_every_range(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    hyper = components["Hyperparameters"]["properties"]
    epochs = {key: value for branch in hyper["epochs"]["anyOf"] for key, value in branch.items()}  # N or "auto"
    learning_rate = {key: value for branch in hyper["learning_rate"]["anyOf"] for key, value in branch.items()}
    assert (epochs["minimum"], epochs["maximum"]) == (1, 100) and hyper["epochs"]["default"] == "auto"
    assert learning_rate["exclusiveMinimum"] == 0 and hyper["warmup_ratio"]["exclusiveMaximum"] == 1
    fraction = components["JobConfig"]["properties"]["eval_fraction"]
    assert (fraction["exclusiveMinimum"], fraction["maximum"]) == (0, 0.5)
    body = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"/datasets", "/jobs/{job_id}/events", "/jobs/{job_id}/cancel", "/health", "/ready"} <= set(schema["paths"])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_app(client, page):
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url: ?["']([^"']+)["']""", html)
    assert assets and not [url for url in assets if "://" in url or url.startswith("//")], assets
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 0, url


def test_static_assets_are_open_but_the_docs_pages_need_a_key(tmp_path):
    with TestClient(create_app(sqlite_settings_for(tmp_path, api_keys="k:admin"))) as guarded:
        assert guarded.get("/docs").status_code == 401 and guarded.get("/redoc").status_code == 401
        assert guarded.get("/docs", headers={"Authorization": "Bearer k"}).status_code == 200
        assert guarded.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
