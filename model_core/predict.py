"""Inference on a saved classifier: tokenize, run the model under inference_mode, softmax (single-label) or a
sigmoid per label (multi-label). No batching policy here: the caller decides which inputs go together."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import torch
from tokenizers import Encoding
from torch import nn

from model_core.checkpoint import LoadedModel, load_model
from model_core.config import MULTI_LABEL, QuantizeMode
from model_core.cpu import onednn_beats_mkl, use_onednn_linears
from model_core.tokenization import TokenIds, Tokenizer

QUANTIZE_MODES = get_args(QuantizeMode)


class Predictor:
    def __init__(self, loaded: LoadedModel, device: str | torch.device = "cpu"):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.labels = loaded.labels
        self.max_len = loaded.max_len
        self.problem_type = loaded.problem_type
        self.thresholds = loaded.thresholds  # multi-label: each label's threshold, in label order
        self.temperature = loaded.temperature  # single-label: calibrated probabilities are softmax(logits / T)
        self.device = torch.device(device)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", quantize: QuantizeMode | None = None) -> Predictor:
        """quantize="int8": dynamic int8 quantization of every nn.Linear (CPU only)."""
        if quantize is not None and quantize not in QUANTIZE_MODES:
            raise ValueError(f"quantize must be one of {QUANTIZE_MODES} or None, got {quantize!r}")
        if quantize is not None and torch.device(device).type != "cpu":
            raise ValueError("int8 dynamic quantization runs on CPU only")
        loaded = load_model(model_dir, device=device)
        if quantize == "int8":
            with warnings.catch_warnings():  # torch.ao eager quantization is deprecated (moving to torchao)
                warnings.simplefilter("ignore")
                loaded.model = torch.ao.quantization.quantize_dynamic(loaded.model, {nn.Linear}, dtype=torch.qint8)
        elif torch.device(device).type == "cpu" and onednn_beats_mkl():
            use_onednn_linears(loaded.model)
        return cls(loaded, device)

    def tokenize(self, pairs: list[tuple[str, str | None]]) -> list[Encoding]:
        return tokenize_pairs(self.tokenizer, pairs, self.max_len)

    def predict_proba(self, pairs: list[tuple[str, str | None]]) -> torch.Tensor:
        """(N, n_labels) float32 probabilities, in input order: of each class (single-label, rows sum to 1, calibrated
        by the model's temperature) or of each label independently (multi-label); texts over max_len are
        truncated."""
        return self.predict_tokenized(self.tokenize(pairs))

    def predict_tokenized(self, encodings: Sequence[Encoding | TokenIds]) -> torch.Tensor:
        """predict_proba on inputs already tokenized by `tokenize` (batches of similar length pad least)."""
        if not encodings:
            return torch.empty(0, len(self.labels))
        batch = self.tokenizer.pad(encodings)
        with torch.inference_mode():
            logits = self.model(batch.input_ids.to(self.device), batch.segment_ids.to(self.device),
                                batch.input_mask.to(self.device))  # (N, L)
            if self.problem_type == MULTI_LABEL:
                return logits.float().sigmoid().cpu()
            return (logits.float() / self.temperature).softmax(dim=-1).cpu()


def tokenize_pairs(tokenizer: Tokenizer, pairs: list[tuple[str, str | None]], max_len: int) -> list[Encoding]:
    """One encoding per (text, text_pair) input, truncated to max_len ([CLS]/[SEP] included); `len()` is its
    token count."""
    texts = [text for text, _ in pairs]
    text_pairs = [pair for _, pair in pairs]
    return tokenizer.encode_each(texts, text_pairs if any(p is not None for p in text_pairs) else None, max_len)


def thresholds_over(labels: list[str], tuned: list[float] | None,
                    hand_set: dict[str, float] | None) -> list[float] | None:
    """The thresholds a multi-label model decides with, in label order: a label's hand-set one ({label: threshold})
    where given, else its tuned one. None for a single-label model (no tuned thresholds)."""
    if tuned is None:
        return None
    return [(hand_set or {}).get(label, threshold) for label, threshold in zip(labels, tuned, strict=True)]


def prediction_row(labels: list[str], probabilities: list[float], all_scores: bool,
                   thresholds: Sequence[float] | None = None, min_confidence: float | None = None) -> dict:
    """One answer of /predict and of the CLI. Single-label: the likeliest label and its probability (+ every
    label's when all_scores); given `min_confidence`, "abstained" says whether that probability is below it, and an
    abstaining answer's label is None and it has every label's probability. Multi-label (a model with `thresholds`,
    in label order): the labels whose probability reaches their threshold, in label order, and every label's
    probability."""
    if thresholds is not None:
        chosen = [label for label, p, t in zip(labels, probabilities, thresholds, strict=True) if p >= t]
        return {"labels": chosen, "scores": dict(zip(labels, probabilities, strict=True))}
    best = max(range(len(labels)), key=probabilities.__getitem__)
    row = {"label": labels[best], "score": probabilities[best]}
    abstained = min_confidence is not None and probabilities[best] < min_confidence
    if abstained:
        row["label"] = None
    if min_confidence is not None:
        row["abstained"] = abstained
    if all_scores or abstained:
        row["scores"] = dict(zip(labels, probabilities, strict=True))
    return row
