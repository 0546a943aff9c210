"""CPU tuning for inference: Linear layers through oneDNN where it beats MKL, and a malloc that keeps freed
memory. The measurements behind both are in docs/decisions.md."""
from __future__ import annotations

import ctypes
import platform

import torch
from torch import nn

# glibc mallopt parameters (malloc.h) and the size below which freed memory is kept for reuse
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_ALLOCATION_BYTES = 64 << 20


def onednn_beats_mkl() -> bool:
    """Whether this CPU runs Linear layers faster through oneDNN than through torch's own CPU Linear: where
    torch found AVX-512, because MKL's sgemm takes its AVX2 code on AMD CPUs while oneDNN picks its kernels by
    instruction set; on AVX2-only CPUs MKL stays the faster."""
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

    A forward pass allocates and frees activations of a few MB each op; by default glibc hands such blocks back
    to the kernel, so every batch page-faults on freshly zeroed pages again. The memory kept is bounded by the
    largest batch the process runs."""
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, KEPT_ALLOCATION_BYTES)  # a fixed value also stops glibc's own adjusting
    libc.mallopt(M_TRIM_THRESHOLD, KEPT_ALLOCATION_BYTES)
