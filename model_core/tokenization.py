"""BERT tokenizer (FullTokenizer semantics) on the Hugging Face `tokenizers` library.

Pipeline: BertNormalizer (clean text, drop control chars, CJK spacing, lower-case + strip accents
when uncased) -> BertPreTokenizer (whitespace + punctuation split) -> greedy longest-match
WordPiece with "##" continuations and [UNK] -> "[CLS] a [SEP] b [SEP]" template with segment ids.

Token ids equal transformers' BertTokenizerFast built from the same vocab.txt.
Thread-safety: the underlying `tokenizers.Tokenizer` is never mutated after construction; one
instance with truncation configured is cached per max_len (created under a lock).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tokenizers import AddedToken, Encoding, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}
MAX_CHARS_PER_WORD = 100  # longer words become [UNK], as in BERT


class VocabError(ValueError):
    """A vocab.txt that is missing, unreadable or malformed."""


@dataclass
class Encoded:
    input_ids: torch.Tensor  # (B, T) token ids, padded with [PAD]
    segment_ids: torch.Tensor  # (B, T) 0 for [CLS] a [SEP], 1 for b [SEP]
    input_mask: torch.Tensor  # (B, T) 1 for real tokens, 0 for padding


class TokenIds(NamedTuple):
    """An encoding's ids alone: what `pad` reads, and all that crosses a process boundary."""

    ids: list[int]
    type_ids: list[int]


def read_vocab(vocab_path: str | Path) -> dict[str, int]:
    """vocab.txt: one token per line, id = line index. Raises VocabError naming the problem."""
    path = Path(vocab_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VocabError(f"vocab file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise VocabError(f"vocab file {path} is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise VocabError(f"cannot read vocab file {path}: {e}") from None
    lines = text.splitlines()
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        token = line.rstrip()
        if not token:
            raise VocabError(f"vocab file {path}: line {index + 1} is empty")
        if token in vocab:
            raise VocabError(f"vocab file {path}: line {index + 1} repeats token {token!r} "
                             f"(first on line {vocab[token] + 1})")
        vocab[token] = index
    missing = [t for t in SPECIAL_TOKENS.values() if t not in vocab and t != "[MASK]"]
    if missing:
        raise VocabError(f"vocab file {path}: missing special token(s) {', '.join(missing)}")
    return vocab


class Tokenizer:
    def __init__(self, vocab: dict[str, int], lowercase: bool = True, strip_accents: bool | None = None,
                 model_max_length: int | None = None):
        self.vocab = vocab
        self.lowercase = lowercase
        self.strip_accents = strip_accents  # None: follow lowercase (as BERT does)
        self.model_max_length = model_max_length  # max_len the model was fine-tuned with, if known
        self.pad_id = vocab["[PAD]"]
        self._base = self._build_pipeline()  # no truncation: copied per max_len, and for tokenize
        self._per_max_len: dict[int, HFTokenizer] = {}
        self._lock = threading.Lock()

    def _build_pipeline(self) -> HFTokenizer:
        tok = HFTokenizer(models.WordPiece(self.vocab, unk_token="[UNK]",
                                           max_input_chars_per_word=MAX_CHARS_PER_WORD))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True,
            strip_accents=self.lowercase if self.strip_accents is None else self.strip_accents,
            lowercase=self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        cls_id, sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        tok.decoder = decoders.WordPiece(prefix="##")
        # as in BertTokenizerFast: a literal "[SEP]" etc. in the text is the special token
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in SPECIAL_TOKENS.values() if t in self.vocab])
        return tok

    @classmethod
    def from_vocab(cls, vocab_path: str | Path, lowercase: bool = True, **kwargs) -> Tokenizer:
        return cls(read_vocab(vocab_path), lowercase=lowercase, **kwargs)

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> Tokenizer:
        """vocab.txt + optional tokenizer_config.json (do_lower_case, strip_accents, model_max_length)."""
        model_dir = Path(model_dir)
        config_path = model_dir / "tokenizer_config.json"
        config = {}
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise VocabError(f"malformed {config_path}: {e}") from None
        max_length = config.get("model_max_length")
        return cls.from_vocab(model_dir / "vocab.txt", lowercase=bool(config.get("do_lower_case", True)),
                              strip_accents=config.get("strip_accents"),
                              model_max_length=max_length if isinstance(max_length, int) else None)

    def _for_max_len(self, max_len: int) -> HFTokenizer:
        """A pipeline with longest-first truncation to max_len."""
        tok = self._per_max_len.get(max_len)
        if tok is None:
            if max_len < 3:
                raise ValueError(f"max_len must be at least 3 ([CLS] a [SEP] b [SEP] needs 3 specials), got {max_len}")
            with self._lock:
                tok = self._per_max_len.get(max_len)
                if tok is None:
                    tok = HFTokenizer.from_str(self._base.to_str())
                    tok.enable_truncation(max_length=max_len, strategy="longest_first")
                    self._per_max_len[max_len] = tok
        return tok

    @staticmethod
    def _inputs(texts: list[str], pairs: list[str | None] | None) -> list:
        if pairs is None:
            return list(texts)
        if len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
        return [text if pair is None else (text, pair) for text, pair in zip(texts, pairs, strict=True)]

    def encode(self, texts: list[str], pairs: list[str | None] | None = None, max_len: int = 512) -> Encoded:
        return self.pad(self.encode_each(texts, pairs, max_len))

    def encode_each(self, texts: list[str], pairs: list[str | None] | None = None,
                    max_len: int = 512) -> list[Encoding]:
        """One unpadded encoding per input, truncated to max_len; `len(encoding)` is its token count."""
        tok, inputs = self._for_max_len(max_len), self._inputs(texts, pairs)
        if len(inputs) == 1:  # without the batch call's thread pool: a hand-off costs more than one input
            return [tok.encode(*inputs[0]) if isinstance(inputs[0], tuple) else tok.encode(inputs[0])]
        return tok.encode_batch_fast(inputs)

    def pad(self, encodings: Sequence[Encoding | TokenIds]) -> Encoded:
        """Encodings from encode_each (or their TokenIds), right-padded with [PAD] to the longest, as one batch."""
        T = max((len(e.ids) for e in encodings), default=0)
        input_ids = np.full((len(encodings), T), self.pad_id, dtype=np.int64)
        segment_ids = np.zeros((len(encodings), T), dtype=np.int64)
        input_mask = np.zeros((len(encodings), T), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            input_ids[row, :n] = encoding.ids
            segment_ids[row, :n] = encoding.type_ids
            input_mask[row, :n] = 1
        return Encoded(torch.from_numpy(input_ids), torch.from_numpy(segment_ids), torch.from_numpy(input_mask))

    def lengths(self, texts: list[str], pairs: list[str | None] | None = None, max_len: int = 512) -> list[int]:
        """Token count of each input after truncation to max_len, [CLS]/[SEP] included."""
        return [len(encoding) for encoding in self.encode_each(texts, pairs, max_len)]

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of one text, without special tokens (for inspection and tests)."""
        return self._base.encode(text, add_special_tokens=False).tokens

    def save(self, model_dir: str | Path, max_len: int | None = None) -> None:
        """vocab.txt, tokenizer_config.json and special_tokens_map.json, as BertTokenizerFast reads them."""
        model_dir = Path(model_dir)
        tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        (model_dir / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        model_max_length = max_len or self.model_max_length or 512
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
                  "strip_accents": self.strip_accents, "tokenize_chinese_chars": True,
                  "model_max_length": model_max_length, **SPECIAL_TOKENS}
        (model_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (model_dir / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n",
                                                           encoding="utf-8")
