"""A multi-label model served over HTTP: /predict answers {labels, scores} with the model's thresholds (a
single-label model in the same app keeps its shape), the registry shows the problem type, and the download loads
in transformers as a multi-label classifier that gives the service's scores."""
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast

from model_core.data import read_table
from testkit.data import SST2_DEV
from tests.factories import ServingApp, minilm_with_random_head, save_minilm_classifier, serving_app
from tests.serving.conftest import MAX_LEN

pytestmark = pytest.mark.anyio

EMOTIONS = ["joy", "anger", "surprise"]
# joy is always chosen, anger never (no probability reaches 1), surprise where its probability reaches 0.5
THRESHOLDS = {"joy": 0.0, "anger": 1.0, "surprise": 0.5}


@pytest.fixture(scope="module")
def multi_label_dir(tmp_path_factory) -> Path:
    model = minilm_with_random_head(len(EMOTIONS), seed=2, head_std=2.0)
    return save_minilm_classifier(tmp_path_factory.mktemp("multi-label") / "model", model, EMOTIONS, MAX_LEN,
                                  thresholds=THRESHOLDS)


@pytest.fixture(scope="module")
async def served_multi(tmp_path_factory, multi_label_dir, classifier_dirs) -> AsyncIterator[ServingApp]:
    """model_a: the multi-label model (deployed); model_b: a single-label one."""
    async with serving_app(tmp_path_factory.mktemp("served-multi"), (multi_label_dir, classifier_dirs[0])) as serving:
        yield serving


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return [example.text for example in read_table(SST2_DEV).examples[200:232]]


async def predictions(client, inputs, **body) -> list[dict]:
    response = await client.post("/predict", json={"inputs": inputs, **body})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


async def test_predict_answers_labels_over_their_thresholds_and_every_score(served_multi, sentences):
    answers = await predictions(served_multi.client, sentences)
    assert all(set(answer) == {"labels", "scores"} and list(answer["scores"]) == EMOTIONS for answer in answers)
    for answer in answers:
        assert answer["labels"] == [label for label in EMOTIONS if answer["scores"][label] >= THRESHOLDS[label]]
    surprise = [answer["scores"]["surprise"] for answer in answers]
    assert min(surprise) < 0.5 <= max(surprise)  # the inputs fall on both sides of its threshold
    assert {tuple(answer["labels"]) for answer in answers} == {("joy",), ("joy", "surprise")}
    assert any(sum(answer["scores"].values()) > 1.2 for answer in answers)  # a sigmoid per label, not a softmax
    assert await predictions(served_multi.client, sentences, return_all_scores=True) == answers

    (single,) = await predictions(served_multi.client, sentences[0], model=served_multi.model_b)
    assert set(single) == {"label", "score"}  # a single-label model keeps its shape


async def test_registry_shows_the_problem_type(served_multi):
    models = {item["id"]: item for item in (await served_multi.client.get("/models")).json()["items"]}
    assert models[served_multi.model_a]["problem_type"] == "multi_label_classification"
    assert models[served_multi.model_a]["labels"] == EMOTIONS
    assert models[served_multi.model_b]["problem_type"] == "single_label_classification"


async def test_download_loads_in_transformers_as_multi_label_with_the_services_scores(served_multi, sentences,
                                                                                      tmp_path):
    model_id = served_multi.model_a
    response = await served_multi.client.get(f"/models/{model_id}/download")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        assert f"{model_id}/thresholds.json" in archive.getnames()
        archive.extractall(tmp_path, filter="data")
    model = BertForSequenceClassification.from_pretrained(tmp_path / model_id).eval()
    tokenizer = BertTokenizerFast.from_pretrained(tmp_path / model_id)
    assert model.config.problem_type == "multi_label_classification"
    targets = torch.ones(len(sentences), len(EMOTIONS))
    with torch.inference_mode():
        encoded = tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        output = model(**encoded, labels=targets)
    # transformers computes the loss of a multi-label problem_type with BCEWithLogitsLoss
    assert output.loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(output.logits, targets).item())
    expected = output.logits.sigmoid()
    answers = await predictions(served_multi.client, sentences)
    served = torch.tensor([[answer["scores"][label] for label in EMOTIONS] for answer in answers])
    torch.testing.assert_close(served, expected, atol=1e-4, rtol=0)
