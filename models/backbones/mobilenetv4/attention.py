"""Mobile MQA (arXiv 2404.10518, Sec. 4): multi-query attention with one shared key/value head and optional
spatial downsampling of keys and values by a strided depth-wise convolution.

Shapes, for an input (B, C, H, W), h heads of dimension d and keys/values downsampled to M = H'W' positions:
queries (B, h, HW, d) from a 1x1 conv; keys and values (B, 1, M, d), shared by every head; the attended values
(B, h, HW, d) go back to (B, h*d, H, W) with channel index head*d + j, then a 1x1 output projection.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.backbones.mobilenetv4.layers import ChannelAffine, ConvNormAct, LayerScale
from models.reparam import batchnorm_scale_shift, fold_affine, fold_input_affine


class MultiQueryAttention(nn.Module):
    """Multi-query attention over a 2-D map with keys and values optionally downsampled by `kv_stride`."""

    def __init__(
        self, channels: int, out_channels: int, heads: int, key_dim: int, kv_stride: int = 1, kv_kernel: int = 3
    ) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.scale = key_dim**-0.5
        self.query_proj = nn.Conv2d(channels, heads * key_dim, 1, bias=False)
        # identity at train time; after fusing, the input BatchNorm the key/value convs could not absorb
        self.kv_input: nn.Module = nn.Identity()
        if kv_stride > 1:  # depth-wise strided conv + BN on the shared key/value path (the "downsampling")
            self.key_down: nn.Module = ConvNormAct(channels, channels, kv_kernel, kv_stride, groups=channels)
            self.value_down: nn.Module = ConvNormAct(channels, channels, kv_kernel, kv_stride, groups=channels)
        else:
            self.key_down, self.value_down = nn.Identity(), nn.Identity()
        self.key_proj = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.value_proj = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.output_proj = nn.Conv2d(heads * key_dim, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q = self.query_proj(x).reshape(b, self.heads, self.key_dim, h * w).transpose(-1, -2)  # (B, h, HW, d)
        kv = self.kv_input(x)
        k = self.key_proj(self.key_down(kv)).flatten(2).unsqueeze(1)  # (B, 1, d, M)
        v = self.value_proj(self.value_down(kv)).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, M, d)
        attn = ((q * self.scale) @ k).softmax(dim=-1)  # (B, h, HW, M): every head attends to the shared keys
        out = (attn @ v).transpose(1, 2).reshape(b, h, w, self.heads * self.key_dim).permute(0, 3, 1, 2)
        return self.output_proj(out)

    @torch.no_grad()
    def absorb_input_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Fold a per-channel affine applied to this module's input into its projections (for fusing).

        Into the 1x1 query (and key/value, without downsampling) convolutions it folds exactly; the
        downsampling depth-wise convs zero-pad their input, so there it stays a ChannelAffine.
        """
        self.query_proj = fold_input_affine(self.query_proj, scale, shift)
        if isinstance(self.key_down, nn.Identity):
            self.key_proj = fold_input_affine(self.key_proj, scale, shift)
            self.value_proj = fold_input_affine(self.value_proj, scale, shift)
        else:
            affine = ChannelAffine(scale.numel()).to(scale)
            affine.weight.copy_(scale)
            affine.bias.copy_(shift)
            self.kv_input = affine


class MobileMQABlock(nn.Module):
    """Pre-norm residual block: x + layer_scale(MQA(BatchNorm(x)))."""

    def __init__(
        self,
        channels: int,
        out_channels: int,
        heads: int,
        key_dim: int,
        kv_stride: int = 1,
        layer_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm2d(channels)
        self.attn = MultiQueryAttention(channels, out_channels, heads, key_dim, kv_stride)
        self.layer_scale: nn.Module = (
            LayerScale(out_channels, layer_scale) if layer_scale is not None else nn.Identity()
        )
        self.residual = channels == out_channels

    @property
    def out_channels(self) -> int:
        return self.attn.output_proj.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.attn(self.norm(x)))
        return x + y if self.residual else y

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the input norm into the attention's projections and the layer scale into its output conv."""
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            self.attn.absorb_input_affine(*batchnorm_scale_shift(self.norm))
            self.norm = nn.Identity()
        for down in (self.attn.key_down, self.attn.value_down):
            if isinstance(down, ConvNormAct):
                down.reparameterize()
        if isinstance(self.layer_scale, LayerScale):
            gamma = self.layer_scale.gamma.detach()
            self.attn.output_proj = fold_affine(self.attn.output_proj, gamma)
            self.layer_scale = nn.Identity()
