from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from model_core.predict import Predictor

from .conftest import FINETUNE_MAX_LEN, LABELS, PAIRS, TEXTS

INPUTS = list(zip(TEXTS, PAIRS))


@pytest.fixture(scope="module")
def predictor(saved_classifier_dir):
    return Predictor.load(saved_classifier_dir)


def test_probabilities_equal_transformers_in_input_order(predictor, hf_logits):
    assert predictor.labels == LABELS and predictor.max_len == FINETUNE_MAX_LEN
    probs = predictor.predict_proba(INPUTS)
    assert probs.dtype == torch.float32 and probs.shape == (len(INPUTS), 3)
    assert torch.allclose(probs, hf_logits.softmax(-1), atol=1e-5)
    reversed_probs = predictor.predict_proba(INPUTS[::-1])
    assert torch.allclose(reversed_probs.flip(0), probs, atol=1e-5)


def test_tokenize_truncates_and_predicts_like_predict_proba(predictor):
    encodings = predictor.tokenize(INPUTS)
    lengths = [len(encoding) for encoding in encodings]
    assert lengths == predictor.tokenizer.lengths(TEXTS, PAIRS, FINETUNE_MAX_LEN)
    assert max(lengths) == FINETUNE_MAX_LEN  # the long input is truncated, not refused
    assert [len(encoding) for encoding in predictor.tokenize([("", None)])] == [2]
    assert torch.equal(predictor.predict_tokenized(encodings), predictor.predict_proba(INPUTS))


def test_empty_request_and_empty_text(predictor):
    assert predictor.predict_proba([]).shape == (0, 3)
    probs = predictor.predict_proba([("", None)])
    assert torch.allclose(probs.sum(-1), torch.ones(1))


def test_concurrent_calls_give_the_same_answers(predictor):
    expected = predictor.predict_proba(INPUTS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: predictor.predict_proba(INPUTS), range(8)))
    assert all(torch.allclose(r, expected, atol=1e-6) for r in results)


def test_int8_quantization_stays_close(saved_classifier_dir, predictor):
    quantized = Predictor.load(saved_classifier_dir, quantize="int8")
    assert not any(type(m) is nn.Linear for m in quantized.model.modules())
    diff = (quantized.predict_proba(INPUTS) - predictor.predict_proba(INPUTS)).abs().max()
    assert 0 < diff < 0.15  # the accuracy cost on real data is measured by the bench


def test_unknown_quantization_is_refused(saved_classifier_dir):
    with pytest.raises(ValueError, match="quantize must be one of"):
        Predictor.load(saved_classifier_dir, quantize="int4")
