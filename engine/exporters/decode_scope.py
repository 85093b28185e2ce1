"""Which nodes of an exported graph are the head's decode, so int8 quantization leaves them in floating point.

The decode turns the head's raw maps into xywh in input pixels and probabilities (grids, sigmoids, the DFL
softmax and its projection, strides, anchors, the final concatenation). Quantized, it rounds pixel coordinates
and probabilities onto one 8-bit scale, and detections drift (20 % relative on a YOLO11 head). The decode is
found from the graph's structure rather than from node names or positions: the head names its prediction convs
(`DetectionHead.prediction_convs`), each is located in the graph by its weight tensor (the exporters keep
parameter names: `model.23.m.0.weight`), and the decode is every node downstream of those convs, plus, in ONNX,
the nodes that compute its constants (grid points, anchors, strides: built from Constant nodes in a fixed-size
export, which onnxruntime's quantizer would otherwise round to 8 bits).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import torch.nn as nn

if TYPE_CHECKING:
    import onnx

Node = TypeVar("Node", bound=Hashable)


class DecodeScopeError(RuntimeError):
    """The head's prediction convs could not all be found in an exported graph (a bug: the exporter renamed them)."""


def prediction_weight_names(model: nn.Module) -> set[str]:
    """The names of the weight tensors of the head's prediction convs in `model`'s state dict (and so in the
    exported graph): e.g. {'model.23.box_convs.0.2.weight', ...}."""
    qualified = {id(module): name for name, module in model.named_modules()}
    return {f"{qualified[id(conv)]}.weight" for conv in model.head.prediction_convs()}


def downstream(starts: Iterable[Node], consumers: Callable[[Node], Iterable[Node]]) -> list[Node]:
    """Every node reachable from `starts` through `consumers`, the starts themselves excluded, in visit order."""
    starts = list(starts)
    seen, found, queue = set(starts), [], deque(starts)
    while queue:
        for node in consumers(queue.popleft()):
            if node not in seen:
                seen.add(node)
                found.append(node)
                queue.append(node)
    return found


def _check_found(found: list[Any], weights: set[str], graph: str) -> None:
    if len(found) != len(weights):
        raise DecodeScopeError(
            f"{graph}: found {len(found)} of the head's {len(weights)} prediction convs by their weights "
            f"({sorted(weights)[:3]}...); cannot tell the decode from the network"
        )


def onnx_decode_nodes(graph: onnx.GraphProto, weights: set[str], with_convs: bool = False) -> list[str]:
    """Names of the ONNX nodes downstream of the Conv nodes whose weight input is one of `weights` (and of those
    Convs too with `with_convs`)."""
    nodes = list(graph.node)
    starts = [i for i, n in enumerate(nodes) if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in weights]
    _check_found(starts, weights, "ONNX graph")
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for tensor in node.input:
            readers.setdefault(tensor, []).append(i)

    def readers_of(i: int) -> Iterable[int]:
        return (j for out in nodes[i].output for j in readers.get(out, ()))

    decode = downstream(starts, readers_of)
    writer = {out: i for i, node in enumerate(nodes) for out in node.output}
    from_images = set(downstream([-1], lambda i: readers_of(i) if i >= 0 else _readers_of_inputs(graph, readers)))
    constants = downstream(  # upstream of the decode through nodes that the images do not reach
        decode, lambda i: (writer[t] for t in nodes[i].input if t in writer and writer[t] not in from_images)
    )
    names = [nodes[i].name for i in (starts if with_convs else []) + decode + constants]
    if not all(names):
        raise DecodeScopeError("ONNX graph: a decode node has no name, so it cannot be excluded from quantization")
    return names


def _readers_of_inputs(graph: onnx.GraphProto, readers: dict[str, list[int]]) -> list[int]:
    return [j for tensor in graph.input for j in readers.get(tensor.name, ())]


def openvino_decode_ops(model: Any, weights: set[str]) -> list[str]:
    """Friendly names of the operations of an OpenVINO model (converted from our ONNX) downstream of the
    Convolutions whose weight constant is one of `weights` (reached through any Convert, as in fp16 IR)."""

    def weight_name(op: Any) -> str:
        source = op.input(1).get_source_output().get_node()
        while source.get_type_name() == "Convert":
            source = source.input(0).get_source_output().get_node()
        return source.get_friendly_name()

    starts = [
        op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution" and weight_name(op) in weights
    ]
    _check_found(starts, weights, "OpenVINO model")
    by_name = {op.get_name(): op for op in model.get_ordered_ops()}  # unique names (friendly names need not be)

    def consumers(name: str) -> Iterable[str]:
        op = by_name[name]
        return (target.get_node().get_name() for out in op.outputs() for target in out.get_target_inputs())

    decode = [by_name[name] for name in downstream([op.get_name() for op in starts], consumers)]
    return [op.get_friendly_name() for op in decode if op.get_type_name() not in ("Result", "Constant")]
