"""Any torchvision classification model as a multi-output stage: `[-1, 1, TorchvisionBackbone, ['resnet18']]`.

The pyramid outputs are found, not typed: the model's module tree is walked from the root, a module that
downsamples by more than 2 is opened into its children, the others are candidate stage ends; two probe
passes (at two image sizes, so global pooling shows as an inconsistent stride) give each candidate's
channels and stride, and the last candidate at each power-of-two stride is that level's output.
`torchvision.models.feature_extraction` then builds the truncated network (the classifier is dropped).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.fx
import torch.nn as nn
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from models.backbones.levels import pyramid_level
from models.backbones.stage import MultiOutputStage
from models.backbones.weights import resolve_weights_argument, under_prefix
from models.layer_spec import FeatureSpec, register_layer
from models.reparam import fold_batchnorm

# Two non-square probe images (height, width), multiples of 32: a map's stride must read the same from its
# height and width in both, which rules out global pooling and channels-last (N, H, W, C) tensors.
PROBE_SIZES = ((128, 160), (160, 224))


@dataclass
class _Call:
    order: int  # completion order of the module's (last) call
    in_height: int | None  # None when the input was not a 4-D tensor
    out_shape: tuple[int, ...] | None  # (C, H, W) of a 4-D output, else None


def classification_models() -> list[str]:
    """Names of torchvision's classification models."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


@register_layer()
class TorchvisionBackbone(MultiOutputStage):
    """A torchvision classification model by name with its pyramid outputs derived from the model itself.

    `weights` is None/False (random init) or a local state-dict file of the full classifier (or of this stage),
    loaded like every backbone's by `load_stage_weights`. `reparameterize()` folds every BatchNorm that directly
    follows a convolution.
    """

    def __init__(
        self, in_channels: int, model_name: str = "resnet18", weights: str | Path | bool | None = None
    ) -> None:
        super().__init__()
        known = classification_models()
        if model_name not in known:
            close = difflib.get_close_matches(str(model_name), known, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"TorchvisionBackbone: {model_name!r} is not a torchvision classification model{hint}")
        self.weights_file = resolve_weights_argument(weights, "TorchvisionBackbone")
        model = torchvision.models.get_model(model_name, weights=None)
        model.eval()  # probes run one image; BatchNorm must use running statistics

        names, specs = _find_levels(model, model_name)
        # a checkpoint's 3-channel first conv cannot fill one adapted to other input channels
        self.adapted_conv = _replace_first_conv(model, in_channels) if in_channels != 3 else None
        self.model_name = model_name
        self.return_nodes = names
        self.body = create_feature_extractor(model, return_nodes={name: str(i) for i, name in enumerate(names)})
        self.body.train()
        self.feature_info = specs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        return [features[str(i)] for i in range(len(self.return_nodes))]

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This stage's names for a checkpoint of the torchvision classifier or of this stage: the feature
        extractor keeps the classifier's module names under `body.`; what it dropped (the classifier) is left
        over. With other input channels than 3 the checkpoint's first conv is left out (it keeps its init)."""
        own = self.state_dict()
        converted = under_prefix(state_dict, own.keys(), "body.")
        if converted is None:
            converted = {f"body.{k}": v for k, v in state_dict.items()}
        if self.adapted_conv is not None:
            weight = f"body.{self.adapted_conv}.weight"
            if weight in converted and converted[weight].shape != own[weight].shape:
                del converted[weight]
        return converted

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold each BatchNorm2d whose input is a Conv2d used nowhere else; idempotent.

        feature_extraction keeps one graph for training and one for eval; both are rewritten.
        """
        body = self.body
        _fold_sequential_pairs(body)  # e.g. Conv2dNormActivation, which the tracer keeps as one leaf module
        graphs = [body.train_graph, body.eval_graph] if hasattr(body, "train_graph") else [body.graph]
        modules = dict(body.named_modules())
        foldable = set.intersection(*(_conv_bn_pairs(g, modules) for g in graphs))
        if not foldable:
            return
        for conv_name, bn_name in foldable:
            _set_submodule(body, conv_name, fold_batchnorm(modules[conv_name], modules[bn_name]))
        for graph in graphs:
            for node in list(graph.nodes):
                source = node.args[0] if node.args else None
                if (
                    node.op == "call_module"
                    and isinstance(source, torch.fx.Node)
                    and (source.target, node.target) in foldable
                ):
                    node.replace_all_uses_with(source)
                    graph.erase_node(node)
        still_used = {n.target for g in graphs for n in g.nodes if n.op in ("call_module", "get_attr")}
        for _, bn_name in foldable:
            if bn_name not in still_used:
                parent, _, leaf = bn_name.rpartition(".")
                delattr(body.get_submodule(parent) if parent else body, leaf)
        body.recompile()


def _fold_sequential_pairs(root: nn.Module) -> None:
    """Inside every nn.Sequential, fold a plain BatchNorm2d into the Conv2d just before it (it reads nothing else)."""
    for module in list(root.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d:
                module._modules[first] = fold_batchnorm(conv, bn)
                module._modules[second] = nn.Identity()


def _conv_bn_pairs(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> set[tuple[str, str]]:
    """(conv, bn) module names where a plain BatchNorm2d (not a subclass with an activation inside) reads
    only the output of a Conv2d that nothing else reads."""
    pairs = set()
    for node in graph.nodes:
        if node.op != "call_module" or type(modules.get(node.target)) is not nn.BatchNorm2d:
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and type(modules.get(source.target)) is nn.Conv2d
            and len(source.users) == 1
        ):
            pairs.add((source.target, node.target))
    return pairs


def _find_levels(model: nn.Module, model_name: str) -> tuple[list[str], list[FeatureSpec]]:
    """Stage-end module names and their (channels, stride), fine to coarse."""
    probes = [_probe(model, size) for size in PROBE_SIZES]
    by_level: dict[int, tuple[int, str, int]] = {}
    for name in _candidates(model, "", probes):
        calls = [p.get(name) for p in probes]
        if any(c is None or c.out_shape is None for c in calls):
            continue
        shapes = [call.out_shape for call in calls]  # type: ignore[union-attr]
        levels = {
            pyramid_level(size / extent)
            for (height, width), shape in zip(PROBE_SIZES, shapes)
            for size, extent in ((height, shape[1]), (width, shape[2]))  # type: ignore[index]
        }
        if len(levels) != 1 or None in levels:
            continue  # global pooling, channels-last, or a stride that is not a power of two
        level = levels.pop()
        channels = {call.out_shape[0] for call in calls}  # type: ignore[union-attr,index]
        order = calls[0].order  # type: ignore[union-attr]
        if len(channels) == 1 and (level not in by_level or order > by_level[level][0]):
            by_level[level] = (order, name, channels.pop())
    if not by_level:
        raise ValueError(f"TorchvisionBackbone: found no feature maps at power-of-two strides in {model_name!r}")
    levels = sorted(by_level)
    chosen = [by_level[level] for level in levels]
    if [c[0] for c in chosen] != sorted(c[0] for c in chosen):
        raise ValueError(f"TorchvisionBackbone: {model_name!r} stage outputs do not get coarser in execution order")
    return [name for _, name, _ in chosen], [FeatureSpec(ch, float(2**lv)) for lv, (_, _, ch) in zip(levels, chosen)]


def _candidates(module: nn.Module, prefix: str, probes: list[dict[str, _Call]]) -> list[str]:
    """Walk from `module`: children that downsample by more than 2 (and have children) are opened."""
    names = []
    for child_name, child in module.named_children():
        name = f"{prefix}{child_name}"
        call = probes[0].get(name)
        if call is None:
            continue  # never called in forward (e.g. an auxiliary classifier in eval mode)
        out_height = call.out_shape[1] if call.out_shape else None
        factor = call.in_height / out_height if call.in_height and out_height else 1.0
        if factor > 2.5 and any(True for _ in child.children()):
            names += _candidates(child, f"{name}.", probes)
        else:
            names.append(name)
    return names


@torch.no_grad()
def _probe(model: nn.Module, size: tuple[int, int]) -> dict[str, _Call]:
    """Run one image through `model` and record each module's last call: input height, output shape."""
    calls: dict[str, _Call] = {}
    counter = iter(range(10**9))

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple, output: object) -> None:
            x = inputs[0] if inputs else None
            in_height = x.shape[-2] if isinstance(x, torch.Tensor) and x.ndim == 4 else None
            out_shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) and output.ndim == 4 else None
            calls[name] = _Call(next(counter), in_height, out_shape)

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        model(torch.zeros(1, 3, *size))
    except Exception as e:
        raise ValueError(f"TorchvisionBackbone: the model cannot run a {size[0]}x{size[1]} probe image: {e}") from e
    finally:
        for h in handles:
            h.remove()
    return calls


def _replace_first_conv(model: nn.Module, in_channels: int) -> str:
    """Swap the first convolution that reads the 3-channel image for one reading `in_channels`; its name."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3:
            new = nn.Conv2d(
                in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, 1, m.bias is not None
            )
            _set_submodule(model, name, new)
            return name
    raise ValueError("TorchvisionBackbone: no 3-channel input convolution to adapt to in_channels")


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)
