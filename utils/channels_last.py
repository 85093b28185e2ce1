"""Channels-last (NHWC) training, except for the convolutions whose CPU backward torch gets wrong in that layout.

Upstream bug (torch 2.14.1, CPU, oneDNN): the backward of a 1x1 convolution with a stride above 1, no padding,
groups=1 and fewer than 8 input channels writes outside its buffers when its input or its weight is channels-last.
The process dies with a segmentation fault or `free(): invalid next size` / `double free or corruption`, hangs, or
carries on with wrong gradients. The weight gradient alone triggers it:

    import torch, torch.nn as nn
    conv = nn.Conv2d(3, 48, 1, stride=2).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    conv(x).sum().backward()  # Segmentation fault
    print("not reached")

In our configs this is MobileOne's stem: the 1x1 scale branch of its first block sees the 3-channel image at
stride 2. Only the backward is affected (forward and inference give the right numbers). The crash also needs a
batch of 2 or more, an input side divisible by the stride and oneDNN enabled; those depend on the data, so the rule
below uses only what a layer fixes. Probed shape by shape in subprocesses (in channels 1-48, out 1-256, kernels
1-6, 1x3 and 3x1, strides 1-5, (1,2) and (2,1), groups 1-8 and depthwise, padding 0-1, dilation 1-2, sizes 8-128,
batches 1-8, 1 and 2 threads): every crash and every wrong gradient matched the rule, and nothing outside it failed.
`tools/probe_channels_last_bug.py` re-checks the rule against the installed torch.

The workaround keeps just those convolutions in NCHW (their weight, and their input through a forward pre-hook);
everything else stays channels-last, so the speed benefit is kept. The layout is a training-time choice: weights,
state dicts, fused and exported models are the same either way.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from utils.logging import LOGGER

_EXEMPT_MARK = "_channels_last_exempt"  # set on convolutions kept in NCHW, so converting twice adds no second hook


def hits_channels_last_backward_bug(module: nn.Module) -> bool:
    """True for a Conv2d whose channels-last CPU backward torch gets wrong: 1x1, stride > 1, no padding, groups 1,
    fewer than 8 input channels (see the module docstring)."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.padding in ((0, 0), "valid")
        and max(module.stride) > 1
        and module.groups == 1
        and module.in_channels < 8
    )


def channels_last_bug_applies(device: torch.device) -> bool:
    """The bug is in oneDNN's CPU kernels: CUDA and a CPU without oneDNN need no workaround."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


def as_nchw(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` with exactly NCHW strides (a copy unless it has them).

    `.contiguous()` is not enough: where a dimension has size 1 both layouts count as contiguous and it returns the
    tensor unchanged, channels-last strides included, which torch's convolution still reads as channels-last. The
    3-channel 1x1 weight of MobileOne's stem is such a tensor.
    """
    expected, step = [], 1
    for size in reversed(tensor.shape):
        expected.insert(0, step)
        step *= size
    return tensor if list(tensor.stride()) == expected else tensor.clone(memory_format=torch.contiguous_format)


def _nchw_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(as_nchw(a) if isinstance(a, torch.Tensor) else a for a in args)


def to_channels_last(model: nn.Module, device: torch.device) -> list[str]:
    """Convert `model` (already on `device`) to channels-last, keeping the convolutions that hit the backward bug in
    NCHW. Returns the names of those convolutions and logs them in one line."""
    model.to(memory_format=torch.channels_last)
    if not channels_last_bug_applies(device):
        return []
    kept = []
    for name, module in model.named_modules():
        if not hits_channels_last_backward_bug(module):
            continue
        module.weight.data = as_nchw(module.weight.data)
        if not getattr(module, _EXEMPT_MARK, False):
            module.register_forward_pre_hook(_nchw_inputs)
            setattr(module, _EXEMPT_MARK, True)
        kept.append(name)
    if kept:
        LOGGER.info(
            f"channels-last: {len(kept)} conv(s) kept in NCHW, as torch's CPU backward of 1x1 strided convs on "
            f"<8 channels crashes in channels-last (utils/channels_last.py): {', '.join(kept)}"
        )
    return kept
