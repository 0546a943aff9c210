"""API keys: every route of the app x {no key, bad key, predict key, admin key}, with the expected role taken from
the contract (so a new route is covered, and must be admin-only unless listed here). 401/403 come before any
404 or 422, even for a body that is not JSON at all."""
import logging
import re
from collections.abc import AsyncIterator

import pytest
from fastapi.routing import APIRoute

from app.auth import ApiKeysError, parse_api_keys
from app.main import create_app
from app.settings import Settings
from tests.factories import ServingApp, serving_app

pytestmark = pytest.mark.anyio

ADMIN_KEY, PREDICT_KEY = "admin-secret-0123", "predict-secret-4567"
# the dashboard's shell is open like /static: the same page for everyone, no data; what it shows comes from keyed
# API calls (app/api/routes/ui.py)
OPEN = {("GET", "/health"), ("GET", "/ready"), ("GET", "/"), ("GET", "/ui")}
PREDICT_ALLOWED = {("POST", "/predict"), ("GET", "/models"), ("GET", "/models/{model_id}")}
KEYS = {"no key": None, "bad key": "not-a-key", "predict key": PREDICT_KEY, "admin key": ADMIN_KEY}


@pytest.fixture(scope="module")
async def guarded(tmp_path_factory, classifier_dirs) -> AsyncIterator[ServingApp]:
    keys = f"{ADMIN_KEY}:admin, {PREDICT_KEY}:predict"
    async with serving_app(tmp_path_factory.mktemp("guarded"), classifier_dirs, api_keys=keys) as serving:
        yield serving


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI >= 0.16x wraps those in one route each)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(api_routes(route.original_router.routes))
    return found


def endpoints(app) -> list[tuple[str, str]]:
    return sorted((method, route.path) for route in api_routes(app.routes) for method in route.methods)


def allowed(key: str | None, method: str, path: str) -> bool:
    if (method, path) in OPEN or key == ADMIN_KEY:
        return True
    return key == PREDICT_KEY and (method, path) in PREDICT_ALLOWED


async def test_auth_matrix(guarded):
    routes = endpoints(guarded.app)
    assert {("POST", "/predict"), ("GET", "/metrics"), ("DELETE", "/models/{model_id}")} <= set(routes)
    for method, template in routes:
        path = re.sub(r"{[^}]+}", "no-such-id", template)
        for name, key in KEYS.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            if method in ("POST", "PUT", "PATCH"):  # not even JSON: must not be parsed before the key is checked
                headers["Content-Type"] = "application/json"
            response = await guarded.client.request(method, path, headers=headers, content=b"{" if
                                                    "Content-Type" in headers else None, params={"limit": -1})
            where = f"{method} {template} with {name}: {response.status_code} {response.text[:200]}"
            if allowed(key, method, template):
                assert response.status_code not in (401, 403, 500), where
            elif key in (None, "not-a-key"):
                assert response.status_code == 401, where
                assert response.headers["WWW-Authenticate"] == "Bearer", where
            else:
                assert response.status_code == 403, where


async def test_keys_grant_their_endpoints(guarded):
    client = guarded.client
    as_predict = {"Authorization": f"Bearer {PREDICT_KEY}"}
    assert (await client.post("/predict", json={"inputs": ["fine"]}, headers=as_predict)).status_code == 200
    assert (await client.get(f"/models/{guarded.model_a}", headers=as_predict)).status_code == 200
    assert (await client.get("/models/no-such-id", headers=as_predict)).status_code == 404
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/metrics", headers={"Authorization": f"Basic {ADMIN_KEY}"})).status_code == 401


async def test_keys_are_never_logged(guarded, caplog):
    with caplog.at_level(logging.DEBUG):
        for key in (ADMIN_KEY, PREDICT_KEY, "some-wrong-key"):
            await guarded.client.post("/models/x/deploy", headers={"Authorization": f"Bearer {key}"})
    assert all(key not in caplog.text for key in (ADMIN_KEY, PREDICT_KEY, "some-wrong-key"))


@pytest.mark.parametrize("spec", ["justakey", "k:root", ":admin", "a:admin,a:predict", "a:admin,,b:predict"])
def test_malformed_api_keys_fail_at_startup(spec):
    with pytest.raises(ApiKeysError) as error:
        create_app(Settings(database_url="sqlite:///:memory:", api_keys=spec))
    assert "API_KEYS entry" in str(error.value)
    assert "root" in str(error.value) or all(part not in str(error.value) for part in ("justakey", "a:admin"))


def test_unset_or_blank_api_keys_mean_no_auth():
    assert parse_api_keys(None) is None and parse_api_keys("  ") is None
    assert parse_api_keys("k1:admin, k2:predict") == {"k1": "admin", "k2": "predict"}
