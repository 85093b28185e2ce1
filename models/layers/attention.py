"""Position-sensitive attention used by YOLO11 (Attention, PSABlock, C2PSA)."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.layer_spec import register_layer
from models.layers.conv import Conv


class Attention(nn.Module):
    """Multi-head self-attention over all positions, with a depth-wise conv positional encoding on values."""

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        qkv_channels = dim + 2 * self.key_dim * num_heads
        self.qkv = Conv(dim, qkv_channels, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, groups=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (
            self.qkv(x)
            .view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
            .split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        )
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(y)


class PSABlock(nn.Module):
    """Attention then a two-layer 1x1 feed-forward, each with a residual connection."""

    def __init__(self, channels: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True) -> None:
        super().__init__()
        self.attn = Attention(channels, num_heads=num_heads, attn_ratio=attn_ratio)
        self.ffn = nn.Sequential(Conv(channels, channels * 2, 1), Conv(channels * 2, channels, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


@register_layer(channels="scaled", repeats_inside=True)
class C2PSA(nn.Module):
    """CSP block whose one half goes through n PSA blocks (one head per 64 channels)."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, expansion: float = 0.5) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"C2PSA keeps channels: in {in_channels} != out {out_channels}")
        self.c = int(in_channels * expansion)
        self.cv1 = Conv(in_channels, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, in_channels, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))
