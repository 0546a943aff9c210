import threading

import pytest
import torch

from model_core.tokenization import Tokenizer, VocabError

HARD_STRINGS = [
    "Héllo wörld! Ça va? naïve café, ÅNGSTRÖM İstanbul ß ﬁ",  # accents, ligatures, dotted I
    "中文字符测试 mixed with 日本語 and 한국어",  # CJK is split per character
    "emoji 😀🎉 test 👍🏽 flag 🇫🇷",
    "ctrl\x00\x01chars\ttab\u200bzero-width\ufeffbom\r\nnewline\x7f",
    "a" * 200,  # longer than max_input_chars_per_word -> [UNK]
    "b" * 100,  # exactly the limit: still word-pieced
    "x" + "é" * 99,
    "\x00\x01\x02\u200b",  # empty after cleanup
    "",
    "   \t  ",
    "unaffable",
    "[CLS] literal [SEP] special tokens [MASK] [sep]",
    "Don't stop-believing... $3.50 @user #tag http://x.y/z?a=1",
    "\u0301\u0300 combining marks first",
]


def hf_ids(hf_tokenizer, texts, pairs, max_len):
    encoded = hf_tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"]


@pytest.mark.parametrize("max_len", [16, 64])
def test_single_inputs_equal_bert_tokenizer_fast(minilm_tokenizer, hf_tokenizer, max_len):
    ours = minilm_tokenizer.encode(HARD_STRINGS, None, max_len)
    ids, types, mask = hf_ids(hf_tokenizer, HARD_STRINGS, None, max_len)
    assert torch.equal(ours.input_ids, ids)
    assert torch.equal(ours.segment_ids, types)
    assert torch.equal(ours.input_mask, mask)


def test_pairs_with_longest_first_truncation_equal_bert_tokenizer_fast(minilm_tokenizer, hf_tokenizer):
    firsts = HARD_STRINGS
    seconds = list(reversed(HARD_STRINGS))
    ours = minilm_tokenizer.encode(firsts, seconds, 24)
    ids, types, mask = hf_ids(hf_tokenizer, firsts, seconds, 24)
    assert torch.equal(ours.input_ids, ids)
    assert torch.equal(ours.segment_ids, types)
    assert torch.equal(ours.input_mask, mask)
    assert ours.segment_ids.sum() > 0


def test_mixed_batch_pads_to_the_longest_input(minilm_tokenizer, hf_tokenizer):
    texts, pairs = ["short", "a somewhat longer first text", "x"], [None, "with a pair", None]
    batch = minilm_tokenizer.encode(texts, pairs, 128)
    lengths = minilm_tokenizer.lengths(texts, pairs, 128)
    assert batch.input_ids.shape == (3, max(lengths))
    assert batch.input_mask.sum(1).tolist() == lengths
    for row, (text, pair) in enumerate(zip(texts, pairs, strict=True)):
        expected = hf_tokenizer(text, pair)["input_ids"]
        assert batch.input_ids[row, :lengths[row]].tolist() == expected
        assert batch.input_ids[row, lengths[row]:].eq(0).all()


def test_lengths_count_specials_and_respect_max_len(minilm_tokenizer):
    assert minilm_tokenizer.lengths(["", "hello world", "word " * 100], ["pair", None, "more " * 100], 32) == [
        4, 4, 32]


@pytest.fixture(scope="module")
def hand_vocab_tokenizer(tmp_path_factory):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un", "runn",
              "##ing", ",", "low", "lowest", "##aff", "##able", "hello", "é"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return Tokenizer.from_vocab(path), Tokenizer.from_vocab(path, lowercase=False)


def test_wordpiece_splits_on_a_hand_vocab(hand_vocab_tokenizer):
    uncased, cased = hand_vocab_tokenizer
    assert uncased.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert uncased.tokenize("UNwant\u00E9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert uncased.tokenize("HéLLo lowest unwantedX") == ["hello", "lowest", "[UNK]"]
    assert cased.tokenize("HeLLo é") == ["[UNK]", "é"]  # cased: no lower-casing, accents kept


def test_minilm_vocab_splits(minilm_tokenizer):
    assert minilm_tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]  # this vocab's pieces
    assert minilm_tokenizer.tokenize("Tokenization") == ["token", "##ization"]
    assert minilm_tokenizer.tokenize("a" * 101) == ["[UNK]"]


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    (b"", "missing special token"),
    (b"[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n", "line 3 is empty"),
    (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", "line 6 repeats token 'hello'"),
    (b"[PAD]\n[CLS]\n[SEP]\nhello\n", "missing special token(s) [UNK]"),
    (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xff\xfe\n", "not valid UTF-8"),
])
def test_missing_or_malformed_vocab_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VocabError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Tokenizer.from_vocab(path)
    assert issubclass(VocabError, ValueError)


def test_save_and_reload_keeps_settings(tmp_path, minilm_tokenizer):
    minilm_tokenizer.save(tmp_path, max_len=96)
    reloaded = Tokenizer.from_dir(tmp_path)
    assert reloaded.vocab == minilm_tokenizer.vocab
    assert reloaded.lowercase and reloaded.model_max_length == 96
    batch = ["Héllo wörld", "another one"]
    assert torch.equal(reloaded.encode(batch, None, 96).input_ids, minilm_tokenizer.encode(batch, None, 96).input_ids)


def test_encode_from_many_threads_with_different_max_lens(minilm_tokenizer):
    texts = [" ".join(HARD_STRINGS[i:] + HARD_STRINGS[:i]) for i in range(len(HARD_STRINGS))]
    expected = {max_len: minilm_tokenizer.encode(texts, None, max_len).input_ids for max_len in (8, 16, 24, 32)}
    failures = []

    def work(max_len):
        for _ in range(20):
            if not torch.equal(minilm_tokenizer.encode(texts, None, max_len).input_ids, expected[max_len]):
                failures.append(max_len)

    threads = [threading.Thread(target=work, args=(max_len,)) for max_len in (8, 16, 24, 32) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_one_input_encodes_like_the_same_input_in_a_batch(minilm_tokenizer):
    texts, pairs = ["A gripping film, beautifully acted.", "dull"], ["the plot", None]
    batch = minilm_tokenizer.encode_each(texts, pairs, 8)
    for i in range(2):
        (alone,) = minilm_tokenizer.encode_each(texts[i:i + 1], pairs[i:i + 1], 8)
        assert (alone.ids, alone.type_ids) == (batch[i].ids, batch[i].type_ids)
    assert len(batch[0]) == 8 and batch[0].type_ids[-1] == 1  # the pair is truncated longest-first, not dropped
