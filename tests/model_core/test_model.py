import itertools
import random

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


def tiny_classifier(n_labels=4) -> Classifier:
    torch.manual_seed(1)
    return Classifier(tiny_model_config(vocab_size=50, max_len=16), n_labels)


def test_padding_does_not_change_the_logits_of_an_input():
    model = tiny_classifier().eval()
    ids = torch.tensor([[2, 7, 9, 3, 0, 0, 0], [2, 5, 6, 8, 4, 1, 3]])
    mask = (ids != 0).long()
    segments = torch.zeros_like(ids)
    with torch.no_grad():
        padded = model(ids, segments, mask)[0]
        alone = model(ids[:1, :4], segments[:1, :4], mask[:1, :4])[0]
    assert torch.allclose(padded, alone, atol=1e-6)


def test_dropout_is_active_in_training_only():
    model = tiny_classifier()
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
    try:
        F.cross_entropy(minilm_classifier(ours.input_ids, ours.segment_ids, ours.input_mask), labels).backward()
        F.cross_entropy(hf_classifier(**theirs).logits, labels).backward()
        D = minilm_classifier.cfg.dim
        pairs = [
            (minilm_classifier.embed.tok_embed.weight.grad, hf_classifier.bert.embeddings.word_embeddings.weight.grad),
            (minilm_classifier.blocks[0].attn.qkv.weight.grad[:D],
             hf_classifier.bert.encoder.layer[0].attention.self.query.weight.grad),
            (minilm_classifier.blocks[-1].ff_in.weight.grad,
             hf_classifier.bert.encoder.layer[-1].intermediate.dense.weight.grad),
        ]
        for ours_grad, hf_grad in pairs:
            assert ours_grad.abs().max() > 0
            assert torch.allclose(ours_grad, hf_grad, atol=1e-5, rtol=1e-3)
    finally:
        minilm_classifier.zero_grad(set_to_none=True)
        hf_classifier.zero_grad(set_to_none=True)


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
