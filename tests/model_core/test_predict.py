import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from model_core.cpu import OneDNNLinear, onednn_beats_mkl, use_onednn_linears
from model_core.predict import Predictor

from .conftest import FINETUNE_MAX_LEN, LABELS, PAIRS, TEXTS

INPUTS = list(zip(TEXTS, PAIRS, strict=True))


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


def transformers_probabilities(model_dir) -> tuple[str, torch.Tensor]:
    """The class transformers loads the directory as, the README's way, and its probabilities of INPUTS (one at a
    time: no padding involved)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    with torch.no_grad():
        rows = [model(**tokenizer(text, pair, truncation=True, max_length=FINETUNE_MAX_LEN, return_tensors="pt"))
                .logits[0].softmax(-1) for text, pair in INPUTS]
    return type(model).__name__, torch.stack(rows)


@pytest.mark.parametrize("pooling, model_dir, transformers_class", [
    ("cls", "saved_classifier_dir", "BertForSequenceClassification"),
    ("mean", "saved_mean_classifier_dir", "BertMeanPoolingForSequenceClassification")])
def test_the_exported_directory_gives_the_services_probabilities_in_transformers(request, pooling, model_dir,
                                                                                transformers_class):
    model_dir = request.getfixturevalue(model_dir)
    ours = Predictor.load(model_dir)
    assert ours.model.pooling == pooling
    loaded_as, probs = transformers_probabilities(model_dir)
    assert loaded_as == transformers_class
    assert (probs - 1 / 3).abs().max() > 0.1  # the random head is far from uniform: the check has teeth
    assert torch.allclose(probs, ours.predict_proba(INPUTS), atol=1e-4)


def test_transformers_refuses_a_mean_model_without_its_code(saved_mean_classifier_dir):
    """Never silently a BertForSequenceClassification reading [CLS] through an untrained pooler."""
    from transformers import AutoModelForSequenceClassification

    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForSequenceClassification.from_pretrained(saved_mean_classifier_dir)


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


def test_cpu_inference_runs_every_linear_through_onednn_where_it_beats_mkl(predictor):
    linears = [m for m in predictor.model.modules() if isinstance(m, nn.Linear | OneDNNLinear)]
    assert linears and all(type(m) is (OneDNNLinear if onednn_beats_mkl() else nn.Linear) for m in linears)


def test_onednn_linear_equals_nn_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 96), nn.GELU(), nn.Linear(96, 5, bias=False)).eval()
    x = torch.randn(37, 48)
    with torch.inference_mode():
        expected = model(x)
        use_onednn_linears(model)
        assert [type(m) for m in model] == [OneDNNLinear, nn.GELU, OneDNNLinear]
        assert torch.allclose(model(x), expected, atol=1e-5)


# 40 MB is over glibc's largest automatic mmap threshold (32 MB): without keep_freed_memory each such block
# is mapped afresh and faults on all its pages again
FAULTS_OF_REUSED_BLOCKS = """
import resource, sys, torch
from model_core.cpu import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
for _ in range(6):  # glibc settles within a few rounds
    torch.empty(10 << 20).fill_(1)
windows = []  # the fewest faults of 3 windows: a busy host's kernel may reclaim kept pages now and then
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.empty(10 << 20).fill_(1)
    windows.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(windows))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_stops_page_faults_on_reused_blocks():
    faults = {mode: int(subprocess.run([sys.executable, "-c", FAULTS_OF_REUSED_BLOCKS, mode], check=True,
                                       capture_output=True, text=True).stdout) for mode in ("default", "keep")}
    pages_per_block = (40 << 20) // 4096
    # by default every round faults on the whole block; kept, it is reused (a round may still go to settling)
    assert faults["default"] > 8 * pages_per_block and faults["keep"] <= 2 * pages_per_block
