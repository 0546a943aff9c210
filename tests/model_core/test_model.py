import copy
import itertools
import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from model_core.model import CHUNK_OVERHEAD_TOKENS, Classifier, Packing, length_chunks
from tests.factories import tiny_model_config

from .conftest import FINETUNE_MAX_LEN, PAIRS, TEXTS


def test_logits_equal_transformers_on_a_padded_batch_of_singles_and_pairs(
        minilm_classifier, minilm_tokenizer, hf_logits):
    batch = minilm_tokenizer.encode(TEXTS, PAIRS, FINETUNE_MAX_LEN)
    assert batch.input_mask.sum(1).tolist() != [batch.input_ids.size(1)] * len(TEXTS)  # some rows are padded
    with torch.no_grad():
        logits = minilm_classifier(batch.input_ids, batch.segment_ids, batch.input_mask)
    assert logits.shape == (len(TEXTS), 3)
    assert torch.allclose(logits, hf_logits, atol=1e-4), (logits - hf_logits).abs().max()


def test_logits_equal_transformers_in_a_large_padded_batch(minilm_classifier, minilm_tokenizer,
                                                           hf_classifier, hf_tokenizer):
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(33)]
    ours = minilm_tokenizer.encode(texts, None, FINETUNE_MAX_LEN)
    assert len(Packing.of(ours.input_mask[ours.input_mask.sum(1).argsort()]).chunks) > 1  # attended in groups
    theirs = hf_tokenizer(texts, padding=True, truncation=True, max_length=FINETUNE_MAX_LEN, return_tensors="pt")
    with torch.no_grad():
        logits = minilm_classifier(ours.input_ids, ours.segment_ids, ours.input_mask)
        expected = hf_classifier(**theirs).logits
    assert torch.allclose(logits, expected, atol=1e-4)


def tiny_classifier(n_labels=4, pooling="cls") -> Classifier:
    torch.manual_seed(1)
    return Classifier(tiny_model_config(vocab_size=50, max_len=16), n_labels, pooling)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_does_not_change_the_logits_of_an_input(pooling):
    model = tiny_classifier(pooling=pooling).eval()
    ids = torch.tensor([[2, 7, 9, 3, 0, 0, 0], [2, 5, 6, 8, 4, 1, 3]])
    mask = (ids != 0).long()
    segments = torch.zeros_like(ids)
    with torch.no_grad():
        padded = model(ids, segments, mask)[0]
        alone = model(ids[:1, :4], segments[:1, :4], mask[:1, :4])[0]
    assert torch.allclose(padded, alone, atol=1e-6)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_dropout_is_active_in_training_only(pooling):
    model = tiny_classifier(pooling=pooling)
    ids = torch.randint(1, 50, (3, 10))
    segments, mask = torch.zeros_like(ids), torch.ones_like(ids)
    model.train()
    assert not torch.equal(model(ids, segments, mask), model(ids, segments, mask))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, segments, mask), model(ids, segments, mask))


def test_fresh_weights_follow_bert_initialisation():
    model = tiny_classifier()
    assert model.head.bias.abs().sum() == 0
    assert 0.01 < model.embed.tok_embed.weight.std().item() < 0.03
    assert torch.equal(model.blocks[0].ff_norm.weight, torch.ones(32))


def test_gradients_equal_transformers(minilm_classifier, minilm_tokenizer, hf_classifier, hf_tokenizer):
    """Dropout off (eval mode), autograd on: the packed, [CLS]-only graph trains like the reference."""
    texts = [f"sentence number {i} " * (i % 5 + 1) for i in range(6)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    ours = minilm_tokenizer.encode(texts, None, FINETUNE_MAX_LEN)
    theirs = hf_tokenizer(texts, padding=True, return_tensors="pt")
    with gradients_cleared(minilm_classifier, hf_classifier):
        F.cross_entropy(minilm_classifier(ours.input_ids, ours.segment_ids, ours.input_mask), labels).backward()
        F.cross_entropy(hf_classifier(**theirs).logits, labels).backward()
        D = minilm_classifier.cfg.dim
        assert_same_gradients([
            (minilm_classifier.embed.tok_embed.weight.grad, hf_classifier.bert.embeddings.word_embeddings.weight.grad),
            (minilm_classifier.blocks[0].attn.qkv.weight.grad[:D],
             hf_classifier.bert.encoder.layer[0].attention.self.query.weight.grad),
            (minilm_classifier.blocks[-1].ff_in.weight.grad,
             hf_classifier.bert.encoder.layer[-1].intermediate.dense.weight.grad),
        ])


@contextmanager
def gradients_cleared(*models: torch.nn.Module) -> Iterator[None]:
    """The session's shared models leave without gradients, whatever the test asserted."""
    try:
        yield
    finally:
        for model in models:
            model.zero_grad(set_to_none=True)


def assert_same_gradients(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Each (ours, reference) pair of gradients is nonzero and equal but for float32 rounding."""
    for ours_grad, reference_grad in pairs:
        assert ours_grad.abs().max() > 0
        assert torch.allclose(ours_grad, reference_grad, atol=1e-5, rtol=1e-3)


def test_cls_pooling_is_the_default_and_only_it_has_the_pooler():
    cls_params = dict(tiny_classifier().named_parameters())
    mean_params = dict(tiny_classifier(pooling="mean").named_parameters())
    assert tiny_classifier().pooling == "cls"
    assert set(cls_params) - set(mean_params) == {"pooler.weight", "pooler.bias"}
    assert set(mean_params) <= set(cls_params)
    with pytest.raises(ValueError, match="pooling must be one of"):
        Classifier(tiny_model_config(vocab_size=50, max_len=16), 2, "max")


@pytest.fixture(scope="module")
def hf_encoder(minilm_dir):
    """transformers' BertModel (no pooler) with MiniLM's weights: the padded reference encoder."""
    from transformers import BertModel

    return BertModel.from_pretrained(minilm_dir, add_pooling_layer=False).eval()


def test_mean_pooling_equals_a_padded_masked_mean_and_trains_like_it(minilm_mean_classifier, minilm_tokenizer,
                                                                    hf_encoder):
    """The packed model's segment mean = transformers' padded last layer averaged over the mask, under the same
    head; dropout off (eval mode), autograd on: logits and gradients agree, in a batch of pairs and single inputs
    long enough to attend in several groups."""
    model = minilm_mean_classifier
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(24)]
    pairs = [None if i % 3 else "and a second segment" for i in range(24)]
    labels = torch.tensor([i % 3 for i in range(24)])
    batch = minilm_tokenizer.encode(texts, pairs, FINETUNE_MAX_LEN)
    assert len(Packing.of(batch.input_mask[batch.input_mask.sum(1).argsort()]).chunks) > 1
    reference_head = copy.deepcopy(model.head)
    with gradients_cleared(model, hf_encoder):
        logits = model(batch.input_ids, batch.segment_ids, batch.input_mask)  # (B, L)
        states = hf_encoder(input_ids=batch.input_ids, token_type_ids=batch.segment_ids,
                            attention_mask=batch.input_mask).last_hidden_state  # (B, T, D), padded
        mask = batch.input_mask.unsqueeze(-1).float()  # (B, T, 1)
        expected = reference_head((states * mask).sum(1) / mask.sum(1))  # (B, L)
        assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()
        F.cross_entropy(logits, labels).backward()
        F.cross_entropy(expected, labels).backward()
        D = model.cfg.dim
        assert_same_gradients([
            (model.head.weight.grad, reference_head.weight.grad),
            (model.embed.tok_embed.weight.grad, hf_encoder.embeddings.word_embeddings.weight.grad),
            (model.embed.seg_embed.weight.grad, hf_encoder.embeddings.token_type_embeddings.weight.grad),
            # the last block's queries: cls pooling reads only [CLS]'s, mean pooling every token's
            (model.blocks[-1].attn.qkv.weight.grad[:D], hf_encoder.encoder.layer[-1].attention.self.query.weight.grad),
            (model.blocks[-1].ff_in.weight.grad, hf_encoder.encoder.layer[-1].intermediate.dense.weight.grad),
        ])


def cheapest_split_by_brute_force(lengths: list[int], overhead: int) -> float:
    """Tries every way to cut the ascending lengths into consecutive ranges."""
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts) if cut] + [len(lengths)]
        best = min(best, sum((end - start) * lengths[end - 1] + overhead for start, end in itertools.pairwise(bounds)))
    return best


def test_length_chunks_is_the_cheapest_split_into_consecutive_ranges():
    rng = random.Random(0)
    for _ in range(200):
        lengths = sorted(rng.randint(2, 128) for _ in range(rng.randint(1, 9)))
        overhead = rng.choice([0, 16, CHUNK_OVERHEAD_TOKENS, 1000])
        ranges = length_chunks(lengths, overhead)
        assert [start for start, _ in ranges] == [0] + [end for _, end in ranges[:-1]]  # consecutive
        assert ranges[-1][1] == len(lengths)
        cost = sum((end - start) * lengths[end - 1] + overhead for start, end in ranges)
        assert cost == cheapest_split_by_brute_force(lengths, overhead)
    assert length_chunks([5, 5, 5], 0) == [(0, 3)]  # equal lengths never split
    assert length_chunks([3, 100], 1000) == [(0, 2)]  # a group is not worth its overhead
    assert length_chunks([3, 100], 0) == [(0, 1), (1, 2)]
