"""BERT encoder + sequence classifier, in one file (nanoGPT style).

Parameter names are ours; model_core.checkpoint maps them to and from Hugging Face names
(the fused attention.qkv is HF's query/key/value concatenated along the output dimension).
Shapes: B batch, T tokens, D dim, nh heads, hs head size (D // nh), F dim_ff, L labels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_core.config import ModelConfig


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_embed = nn.Embedding(cfg.max_len, cfg.dim)
        self.seg_embed = nn.Embedding(cfg.n_segments, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.p_drop_hidden)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.size(1)
        assert T <= self.pos_embed.num_embeddings, f"{T} tokens, but only {self.pos_embed.num_embeddings} positions"
        pos = self.pos_embed.weight[:T]  # (T, D), broadcast over the batch
        x = self.tok_embed(input_ids) + self.seg_embed(segment_ids) + pos  # (B, T, D)
        return self.drop(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.p_drop_attn = cfg.p_drop_attn

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        B, T, D = x.shape
        nh, hs = self.n_heads, D // self.n_heads
        # (B, T, 3, nh, hs) -> (3, B, nh, T, hs): one permute for q, k and v together
        q, k, v = self.qkv(x).view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)
        if cls_only:  # the [CLS] query alone (last block); keys and values still from every token
            q = q[:, :, :1]  # (B, nh, 1, hs)
        y = F.scaled_dot_product_attention(  # (B, nh, Tq, hs), Tq = 1 or T
            q, k, v, attn_mask=attn_mask, dropout_p=self.p_drop_attn if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, q.size(2), D)  # (B, Tq, D)
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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """cls_only: compute the output at the [CLS] position only, (B, 1, D)."""
        attended = self.attn(x, attn_mask, cls_only)  # (B, Tq, D)
        if cls_only:
            x = x[:, :1]
        x = self.attn_norm(x + self.drop(attended))  # (B, Tq, D)
        h = F.gelu(self.ff_in(x))  # (B, Tq, F), exact erf GELU as BERT's "gelu"
        return self.ff_norm(x + self.drop(self.ff_out(h)))  # (B, Tq, D)


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
        # boolean mask, True = may attend; (B, 1, 1, T) broadcasts over heads and query positions
        attn_mask = input_mask.bool()[:, None, None, :]
        x = self.embed(input_ids, segment_ids)  # (B, T, D)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # only [CLS] is read from the last block: skip its other positions (exact; ~12% fewer FLOPs)
            x = block(x, attn_mask, cls_only=i == last)  # (B, T, D); (B, 1, D) after the last block
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, D), the [CLS] position
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
