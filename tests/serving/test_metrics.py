"""GET /metrics: Prometheus text with requests per route template and status, batching, model loads, jobs."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.anyio


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics(served):
    client = served.client
    before = await scrape(client)
    assert (await client.post("/predict", json={"inputs": ["fine", "bad"]})).status_code == 200
    assert (await client.get("/models/no-such-model")).status_code == 404
    assert (await client.get("/no/such/path/123")).status_code == 404
    after = await scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("http_requests_total", method="POST", route="/predict", status="200") == 1
    assert grew("http_requests_total", method="GET", route="/models/{model_id}", status="404") == 1
    assert grew("http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert grew("http_request_duration_seconds_count", method="POST", route="/predict", status="200") == 1
    assert grew("predict_batch_size_count") >= 1 and grew("predict_batch_size_sum") == 2
    assert grew("predict_queue_wait_seconds_count") == 2
    assert grew("predict_batch_seconds_count") == grew("predict_batch_size_count")
    assert value(after, "model_load_seconds_count") >= 1  # the deployed model was loaded for /predict
    assert value(after, "predict_pending_inputs") == 0
    assert value(after, "jobs", status="succeeded") == 2  # the two jobs that registered the fixture's models
    assert value(after, "jobs", status="running") == 0 and ("jobs", frozenset({("status", "queued")})) in after
