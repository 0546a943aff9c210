"""Decision settings over HTTP: PATCH /models/{id} sets min_confidence (single-label abstention) and hand-set
thresholds (multi-label) that the next /predict uses; bad settings are 422s that change nothing; /predict serves
temperature-calibrated probabilities; the download carries a model card that shows the settings as they are."""
import io
import shutil
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch

from model_core.checkpoint import save_temperature
from model_core.predict import Predictor
from tests.factories import ServingApp, minilm_with_random_head, save_minilm_classifier, serving_app
from tests.serving.conftest import LABELS, MAX_LEN

pytestmark = pytest.mark.anyio

EMOTIONS = ["joy", "anger", "surprise"]
TUNED = {"joy": 0.5, "anger": 0.5, "surprise": 0.5}
TEMPERATURE = 2.0
SENTENCES = ["a gripping, beautifully shot film", "dull", "it was fine", "the plot never takes off",
             "one of the best of the year", "I wanted my money back", "an ok movie", "lovely"]


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory, classifier_dirs) -> Path:
    """The serving fixtures' first classifier with a temperature of 2."""
    model_dir = shutil.copytree(classifier_dirs[0], tmp_path_factory.mktemp("calibrated") / "model")
    save_temperature(model_dir, TEMPERATURE)
    return model_dir


@pytest.fixture(scope="module")
async def served(tmp_path_factory, calibrated_dir) -> AsyncIterator[ServingApp]:
    """model_a: the calibrated single-label model (deployed); model_b: a multi-label one."""
    multi = save_minilm_classifier(tmp_path_factory.mktemp("multi") / "model",
                                   minilm_with_random_head(len(EMOTIONS), seed=2, head_std=2.0), EMOTIONS, MAX_LEN,
                                   thresholds=TUNED)
    async with serving_app(tmp_path_factory.mktemp("served-decisions"), (calibrated_dir, multi)) as serving:
        yield serving


async def predictions(served: ServingApp, model: str, **body) -> list[dict]:
    response = await served.client.post("/predict", json={"model": model, "inputs": SENTENCES, **body})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


async def patch(served: ServingApp, model: str, body: dict):
    return await served.client.patch(f"/models/{model}", json=body)


async def test_predict_serves_probabilities_divided_by_the_temperature(served, classifier_dirs):
    answers = await predictions(served, served.model_a, return_all_scores=True)
    raw = Predictor.load(classifier_dirs[0]).predict_proba([(text, None) for text in SENTENCES])
    expected = (raw.log() / TEMPERATURE).softmax(dim=-1)
    served_scores = torch.tensor([[answer["scores"][label] for label in LABELS] for answer in answers])
    assert torch.allclose(served_scores, expected, atol=1e-5)
    assert all("abstained" not in answer for answer in answers)  # no min_confidence: the contract's shape


async def test_min_confidence_makes_predict_abstain_below_it_and_null_clears_it(served):
    before = await predictions(served, served.model_a)
    scores = sorted(answer["score"] for answer in before)
    min_confidence = (scores[3] + scores[4]) / 2  # half the inputs fall below it
    response = await patch(served, served.model_a, {"min_confidence": min_confidence})
    assert response.status_code == 200, response.text
    assert response.json()["min_confidence"] == min_confidence

    after = await predictions(served, served.model_a)
    for old, new in zip(before, after, strict=True):
        assert new["score"] == pytest.approx(old["score"])
        if old["score"] < min_confidence:
            assert new["abstained"] is True and new["label"] is None and set(new["scores"]) == set(LABELS)
        else:
            assert new == {**old, "abstained": False}
    assert sum(answer["abstained"] for answer in after) == 4

    assert (await patch(served, served.model_a, {"min_confidence": None})).json()["min_confidence"] is None
    assert await predictions(served, served.model_a) == before


async def test_hand_set_thresholds_override_the_tuned_ones_for_their_labels(served):
    tuned = await predictions(served, served.model_b)
    response = await patch(served, served.model_b, {"thresholds": {"anger": 0.0, "joy": 1.0}})
    assert response.status_code == 200, response.text
    assert response.json()["thresholds"] == {"anger": 0.0, "joy": 1.0}
    hand_set = await predictions(served, served.model_b)
    for old, new in zip(tuned, hand_set, strict=True):
        surprise = ["surprise"] if new["scores"]["surprise"] >= TUNED["surprise"] else []
        assert new["labels"] == ["anger", *surprise]  # joy never reaches 1, anger always reaches 0
        assert [label for label in old["labels"] if label == "surprise"] == surprise
    assert (await patch(served, served.model_b, {"thresholds": None})).json()["thresholds"] is None
    assert await predictions(served, served.model_b) == tuned


@pytest.mark.parametrize(("model", "body", "named"), [
    ("a", {"min_confidence": 1.5}, "min_confidence"),
    ("a", {"min_confidence": -0.1}, "min_confidence"),
    ("a", {"thresholds": {"negative": 0.5}}, "multi-label"),
    ("b", {"min_confidence": 0.5}, "single-label"),
    ("b", {"thresholds": {"joy": 0.5, "zebra": 0.2, "yak": 0.1}}, "'zebra', 'yak'"),
    ("b", {"thresholds": {"joy": 1.5, "anger": -1}}, "'joy': 1.5, 'anger': -1"),
    ("b", {"thresholds": {"joy": 0.3}, "min_confidence": 0.2}, "single-label"),
    ("a", {"min_confidnce": 0.5}, "min_confidnce"),
])
async def test_bad_settings_are_422_naming_the_problem_and_change_nothing(served, model, body, named):
    model_id = served.model_a if model == "a" else served.model_b
    before = (await served.client.get(f"/models/{model_id}")).json()
    response = await patch(served, model_id, body)
    assert response.status_code == 422, response.text
    assert named in response.text
    assert (await served.client.get(f"/models/{model_id}")).json() == before


async def test_patch_of_an_unknown_model_is_404(served):
    assert (await patch(served, "nope", {"min_confidence": 0.5})).status_code == 404


async def test_a_model_without_a_report_has_no_evaluation(served):
    response = await served.client.get(f"/models/{served.model_a}/evaluation")
    assert response.status_code == 404 and "no held-out evaluation" in response.json()["detail"]
    assert (await served.client.get("/models/nope/evaluation")).status_code == 404


async def test_the_download_has_a_model_card_with_the_settings_as_they_are_now(served):
    assert (await patch(served, served.model_a, {"min_confidence": 0.7})).status_code == 200
    try:
        response = await served.client.get(f"/models/{served.model_a}/download")
    finally:
        await patch(served, served.model_a, {"min_confidence": None})
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        names = archive.getnames()
        card = archive.extractfile(f"{served.model_a}/README.md").read().decode()
        assert archive.extractfile(f"{served.model_a}/config.json").read()  # the directory's files are intact
    assert f"{served.model_a}/calibration.json" in names
    assert "`min_confidence` = 0.7" in card and "T = 2.0000" in card
    assert "softmax(logits / T)" in card.replace("`", "")
    assert all(f"## {title}" in card for title in ("Training data", "Hyperparameters", "Evaluation", "Calibration",
                                                   "Decision settings", "Intended use and limits"))
