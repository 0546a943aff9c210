"""BERT encoder + sequence classifier, in one file (nanoGPT style).

Parameter names are ours; model_core.checkpoint maps them to and from Hugging Face names
(the fused attention.qkv is HF's query/key/value concatenated along the output dimension).
Padding costs nothing but attention: every layer except attention runs on the N real tokens of
the batch, packed as (N, D); attention unpacks them to (B, T) and masks the padding.
Shapes: B batch, T tokens, N real tokens, D dim, nh heads, hs head size (D // nh), F dim_ff, L labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model_core.config import ModelConfig


@dataclass
class Packing:
    """Where the real tokens of a right-padded (B, T) batch are."""

    index: torch.Tensor  # (N,) positions of the real tokens in the flattened (B * T) batch
    cls_rows: torch.Tensor  # (B,) rows of the [CLS] tokens in the packed (N, ...) layout
    attn_mask: torch.Tensor  # (B, 1, 1, T) True = may attend; broadcasts over heads and queries
    B: int
    T: int

    @classmethod
    def of(cls, input_mask: torch.Tensor) -> Packing:
        B, T = input_mask.shape
        lengths = input_mask.sum(1)  # (B,)
        return cls(index=input_mask.flatten().nonzero().squeeze(1), cls_rows=lengths.cumsum(0) - lengths,
                   attn_mask=input_mask.bool()[:, None, None, :], B=B, T=T)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...): the real tokens only."""
        return x.flatten(0, 1)[self.index]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (B, T, C), zeros at the padding."""
        padded = x.new_zeros(self.B * self.T, x.size(1)).index_copy(0, self.index, x)
        return padded.view(self.B, self.T, -1)


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_embed = nn.Embedding(cfg.max_len, cfg.dim)
        self.seg_embed = nn.Embedding(cfg.n_segments, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.p_drop_hidden)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.tok_embed(input_ids) + self.seg_embed(segment_ids) + self.pos_embed(positions)  # (N, D)
        return self.drop(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.p_drop_attn = cfg.p_drop_attn

    def forward(self, x: torch.Tensor, packing: Packing, cls_only: bool = False) -> torch.Tensor:
        B, T, D = packing.B, packing.T, x.size(1)
        nh, hs = self.n_heads, D // self.n_heads
        qkv = packing.unpack(self.qkv(x))  # (N, 3D) -> (B, T, 3D)
        # (B, T, 3, nh, hs) -> (3, B, nh, T, hs): one permute for q, k and v together
        q, k, v = qkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)
        if cls_only:  # the [CLS] query alone (last block); keys and values still from every token
            q = q[:, :, :1]  # (B, nh, 1, hs)
        y = F.scaled_dot_product_attention(  # (B, nh, Tq, hs), Tq = 1 or T
            q, k, v, attn_mask=packing.attn_mask, dropout_p=self.p_drop_attn if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, q.size(2), D)  # (B, Tq, D)
        y = y[:, 0] if cls_only else packing.pack(y)  # (B, D) or (N, D)
        return self.proj(y)


class Block(nn.Module):
    """Post-LN Transformer block: x = LN(x + attn(x)); x = LN(x + ff(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(cfg.dim, cfg.dim_ff)
        self.ff_out = nn.Linear(cfg.dim_ff, cfg.dim)
        self.ff_norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.p_drop_hidden)

    def forward(self, x: torch.Tensor, packing: Packing, cls_only: bool = False) -> torch.Tensor:
        """x: (N, D) real tokens -> (N, D), or (B, D) at the [CLS] tokens only when cls_only."""
        attended = self.attn(x, packing, cls_only)  # (M, D), M = N or B
        if cls_only:
            x = x[packing.cls_rows]
        x = self.attn_norm(x + self.drop(attended))  # (M, D)
        h = F.gelu(self.ff_in(x))  # (M, F), exact erf GELU as BERT's "gelu"
        return self.ff_norm(x + self.drop(self.ff_out(h)))  # (M, D)


class Classifier(nn.Module):
    """BERT encoder, [CLS] pooler (Linear + tanh), dropout, linear classification head."""

    def __init__(self, cfg: ModelConfig, n_labels: int):
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {n_labels}")
        self.cfg = cfg
        self.n_labels = n_labels
        self.embed = Embeddings(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.pooler = nn.Linear(cfg.dim, cfg.dim)
        self.drop = nn.Dropout(cfg.p_drop_hidden)
        self.head = nn.Linear(cfg.dim, n_labels)
        self.apply(init_weights)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor,
                input_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids, segment ids and mask (1 = real token; padding on the right) -> (B, L) logits."""
        T = input_ids.size(1)
        assert T <= self.cfg.max_len, f"{T} tokens, but the model has {self.cfg.max_len} positions"
        packing = Packing.of(input_mask)
        x = self.embed(packing.pack(input_ids), packing.pack(segment_ids), packing.index % T)  # (N, D)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # only [CLS] is read from the last block: skip its other positions (exact; ~12% fewer FLOPs)
            x = block(x, packing, cls_only=i == last)  # (N, D); (B, D) after the last block
        pooled = torch.tanh(self.pooler(x))  # (B, D)
        return self.head(self.drop(pooled))  # (B, L)


def init_weights(module: nn.Module) -> None:
    """Hugging Face BERT initialisation: normal(0, 0.02) weights, zero biases, LayerNorm = identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
