"""Inference on a saved classifier: tokenize, run the model under inference_mode, softmax.
No batching policy here: the caller decides which inputs go together."""
from __future__ import annotations

import ctypes
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Encoding
from torch import nn

from model_core.checkpoint import LoadedModel, load_model
from model_core.tokenization import TokenIds, Tokenizer

QUANTIZE_MODES = ("int8",)
# glibc mallopt parameters (malloc.h) and the size below which freed memory is kept for reuse
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_ALLOCATION_BYTES = 64 << 20


class Predictor:
    def __init__(self, loaded: LoadedModel, device: str | torch.device = "cpu"):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.labels = loaded.labels
        self.max_len = loaded.max_len
        self.device = torch.device(device)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", quantize: str | None = None) -> Predictor:
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
        """(N, n_labels) float32 class probabilities, in input order; texts over max_len are truncated."""
        return self.predict_tokenized(self.tokenize(pairs))

    def predict_tokenized(self, encodings: Sequence[Encoding | TokenIds]) -> torch.Tensor:
        """predict_proba on inputs already tokenized by `tokenize` (batches of similar length pad least)."""
        if not encodings:
            return torch.empty(0, len(self.labels))
        batch = self.tokenizer.pad(encodings)
        with torch.inference_mode():
            logits = self.model(batch.input_ids.to(self.device), batch.segment_ids.to(self.device),
                                batch.input_mask.to(self.device))  # (N, L)
            return logits.float().softmax(dim=-1).cpu()


def onednn_beats_mkl() -> bool:
    """Whether this CPU runs Linear layers faster through oneDNN than through torch's own CPU Linear (MKL's
    sgemm): where torch found AVX-512. MKL takes its AVX2 code on AMD CPUs even where AVX-512 is there;
    oneDNN picks its kernels by instruction set. Measured on AMD EPYC, one core, the model's GEMMs
    (400 x 384 x 1536): with AVX-512, oneDNN 220 vs MKL 95 GFLOP/s; on an AVX2-only EPYC, oneDNN 81 vs MKL
    91, and the whole model 10% slower through oneDNN."""
    return torch.backends.mkldnn.is_available() and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


class OneDNNLinear(nn.Module):
    """An inference-only nn.Linear on CPU through oneDNN, its weight reordered once into oneDNN's layout
    (the same results to float32 rounding)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())  # opaque oneDNN tensor
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")  # (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def use_onednn_linears(module: nn.Module) -> None:
    """Replaces every nn.Linear under `module` (an eval-mode CPU model) with its OneDNNLinear, in place."""
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, OneDNNLinear(child))
        else:
            use_onednn_linears(child)


def keep_freed_memory() -> None:
    """Makes this process's malloc (glibc's; elsewhere nothing changes) keep freed blocks under
    KEPT_ALLOCATION_BYTES for reuse instead of handing them back to the kernel.

    A forward pass allocates and frees activations of a few MB each op; by default glibc maps such blocks
    fresh, or trims them off its heap, so every batch page-faults on zeroed pages again: measured in a
    replica under /predict load, 1,600 faults a batch and 12% of its CPU time in the kernel, 3% with this.
    The memory kept is bounded by the largest batch the process runs."""
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, KEPT_ALLOCATION_BYTES)  # a fixed value also stops glibc's own adjusting
    libc.mallopt(M_TRIM_THRESHOLD, KEPT_ALLOCATION_BYTES)


def tokenize_pairs(tokenizer: Tokenizer, pairs: list[tuple[str, str | None]], max_len: int) -> list[Encoding]:
    """One encoding per (text, text_pair) input, truncated to max_len ([CLS]/[SEP] included); `len()` is its
    token count."""
    texts = [text for text, _ in pairs]
    text_pairs = [pair for _, pair in pairs]
    return tokenizer.encode_each(texts, text_pairs if any(p is not None for p in text_pairs) else None, max_len)
