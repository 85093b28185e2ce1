"""Would MobileOne's training step be faster with a block's k depthwise conv-BN branches computed as one grouped
convolution with k times the outputs and one BatchNorm over them (the same arithmetic: BatchNorm is per channel)?
Forward and backward of both forms, interleaved.

python benchmarks/mobileone_branch_merge.py --channels 64 --size 104 --batch 16 --branches 4 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=104)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    n, c, size, k = args.batch, args.channels, args.size, args.branches

    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.rand(n, c, size, size).contiguous(memory_format=cl).requires_grad_()
    convs = nn.ModuleList(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False) for _ in range(k)).to(memory_format=cl)
    norms = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(k))
    merged_conv = nn.Conv2d(c, c * k, 3, 1, 1, groups=c, bias=False).to(memory_format=cl)
    merged_norm = nn.BatchNorm2d(c * k)

    def separate() -> torch.Tensor:
        return sum(norm(conv(x)) for conv, norm in zip(convs, norms))

    def merged() -> torch.Tensor:  # output channel j of a grouped conv belongs to input channel j // k
        return merged_norm(merged_conv(x)).unflatten(1, (c, k)).sum(2)

    results: dict[str, list[float]] = {"separate": [], "merged": []}
    for _ in range(args.rounds):
        for name, forward in (("separate", separate), ("merged", merged)):
            started = time.perf_counter()
            forward().mean().backward()
            results[name].append(time.perf_counter() - started)
    print(f"{k} branches, {c} channels at {size}x{size}, batch {n}, {torch.get_num_threads()} threads:")
    for name, seconds in results.items():
        print(f"  {name:<9} " + " ".join(f"{s:.3f}" for s in seconds) + " s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
