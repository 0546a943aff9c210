"""The model registry: list/show fields and paging, deploy, delete (409 for the deployed one), and the download
that transformers loads and that agrees with /predict."""
import io
import tarfile

import pytest
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast

from model_core.data import read_table
from testkit.data import SST2_DEV
from tests.serving.conftest import LABELS, MAX_LEN

pytestmark = pytest.mark.anyio

MODEL_FIELDS = {"id", "job_id", "base_model", "labels", "problem_type", "metrics", "created_at", "size_bytes",
                "deployed", "min_confidence", "thresholds"}


async def test_list_is_newest_first_with_paging(served):
    response = await served.client.get("/models")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (len(page["items"]), 50, 0)
    ids = [item["id"] for item in page["items"]]
    assert ids[:2] == [served.model_b, served.model_a]  # registered a then b
    assert all(set(item) == MODEL_FIELDS for item in page["items"])

    second = (await served.client.get("/models", params={"limit": 1, "offset": 1})).json()
    assert [item["id"] for item in second["items"]] == [ids[1]] and second["total"] == page["total"]
    for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"limit": "x"}):
        assert (await served.client.get("/models", params=bad)).status_code == 422


async def test_show_model(served):
    model = (await served.client.get(f"/models/{served.model_a}")).json()
    assert set(model) == MODEL_FIELDS
    assert model["labels"] == LABELS and model["deployed"] is True and model["base_model"] == "minilm-l6"
    model_dir = served.settings.artifact_dir / "models" / served.model_a
    assert model["size_bytes"] == sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    assert model["created_at"].endswith(("Z", "+00:00"))
    assert (await served.client.get("/models/nope")).status_code == 404


async def test_deploy_and_delete(served):
    client = served.client
    assert (await client.post("/models/nope/deploy")).status_code == 404
    deployed = await client.post(f"/models/{served.model_b}/deploy")
    assert deployed.status_code == 200 and deployed.json()["deployed"] is True
    flags = {item["id"]: item["deployed"] for item in (await client.get("/models")).json()["items"]}
    assert flags == {served.model_a: False, served.model_b: True}
    assert (await client.post("/predict", json={"inputs": "x"})).json()["model"] == served.model_b

    refused = await client.delete(f"/models/{served.model_b}")
    assert refused.status_code == 409 and "deployed" in refused.json()["detail"]
    assert (await client.get(f"/models/{served.model_b}")).status_code == 200

    spare = served.register_copy(served.settings.artifact_dir / "models" / served.model_a)
    assert (await client.post("/predict", json={"inputs": "x", "model": spare})).status_code == 200  # now cached
    assert (await client.delete(f"/models/{spare}")).status_code == 204
    assert not (served.settings.artifact_dir / "models" / spare).exists()
    for gone in (client.get(f"/models/{spare}"), client.delete(f"/models/{spare}"),
                 client.post("/predict", json={"inputs": "x", "model": spare})):
        assert (await gone).status_code == 404

    assert (await client.post(f"/models/{served.model_a}/deploy")).status_code == 200  # as the module started


async def test_download_loads_in_transformers_and_agrees_with_predict(served, tmp_path):
    response = await served.client.get(f"/models/{served.model_a}/download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert f"model-{served.model_a}.tar.gz" in response.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        names = set(archive.getnames())
        assert {f"{served.model_a}/{name}" for name in ("config.json", "model.safetensors", "vocab.txt")} <= names
        archive.extractall(tmp_path, filter="data")
    model_dir = tmp_path / served.model_a

    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS
    sentences = [e.text for e in read_table(SST2_DEV).examples[100:150]]
    with torch.inference_mode():
        encoded = tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        expected = model(**encoded).logits.softmax(dim=-1)
    answer = (await served.client.post("/predict", json={"inputs": sentences, "return_all_scores": True})).json()
    served_probs = torch.tensor([[p["scores"][label] for label in LABELS] for p in answer["predictions"]])
    torch.testing.assert_close(served_probs, expected, atol=1e-4, rtol=0)
    assert [p["label"] for p in answer["predictions"]] == [LABELS[i] for i in expected.argmax(dim=1).tolist()]
    assert len({p["label"] for p in answer["predictions"]}) == 2  # the head is not constant


async def test_download_unknown_is_404(served):
    assert (await served.client.get("/models/nope/download")).status_code == 404

