"""parse_model: turn a validated config's `[from, number, module, args]` rows into modules and routes.

The builder knows no layer type: each row's type comes from the registry and its build rule says what the
outputs are. The builder tracks one (channels, stride) spec per *slot*; a normal row fills one slot, a
multi-output stage fills one slot per pyramid level. `from` indices refer to slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from models.config import ConfigError, ModelConfig
from models.layer_spec import FeatureSpec, LayerContext, resolve_layer
from utils.values import is_int

FLOW = -1  # a route source meaning "the previous layer's output", which the forward pass keeps at hand
MIN_PYRAMID_LEVELS = 5  # a stage covers P1..P5 at least, so configs index it the same whatever it produces


@dataclass
class LayerRecord:
    """One built row: where its inputs come from, which slots its outputs fill, and how it was built."""

    slots: list[int]  # output slots, one per produced map
    first_slot: int
    slot_count: int  # slots occupied (a stage may leave some empty)
    sources: list[int]  # absolute slots, or FLOW
    from_list: bool  # the module takes a list of tensors
    written_from: Any  # `from` as written in the YAML, for the layer table
    n: int  # repeats after the depth multiple
    name: str
    args: list[Any]
    outputs: list[FeatureSpec]
    multi_output: bool = False

    @property
    def label(self) -> str:
        last = self.first_slot + self.slot_count - 1
        return str(self.first_slot) if last == self.first_slot else f"{self.first_slot}-{last}"


@dataclass
class BuiltLayers:
    """What parse_model built: the modules in row order, one record per row, and the slots read later."""

    layers: nn.ModuleList
    records: list[LayerRecord]
    saved_slots: set[int] = field(default_factory=set)


def parse_model(config: ModelConfig, in_channels: int = 3) -> BuiltLayers:
    """Build every row of `config`; any problem raises ConfigError naming the file and the layer."""
    slots: list[FeatureSpec | None] = []
    image = FeatureSpec(in_channels, 1.0)
    layers, records = nn.ModuleList(), []
    symbols = _symbols(config)

    for section, row_index, row in config.rows:
        slot = len(slots)
        where = f"{config.source}: layer {slot} ({section} row {row_index}: {row})"
        try:
            written_from, n_written, name, args = _unpack_row(row)
            entry = resolve_layer(name)
            sources, inputs = _resolve_sources(written_from, slots, image)
            ctx = LayerContext(
                index=slot,
                name=name,
                inputs=inputs,
                from_list=isinstance(written_from, list),
                n=config.scaling.repeats(n_written),
                args=[_substitute(a, symbols, config) for a in args],
                scaling=config.scaling,
            )
            build = entry.build(ctx)
            out_slots, slot_count = _assign_slots(build.outputs, build.multi_output, slot)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        except Exception as e:  # any build failure is a config problem at this row
            raise ConfigError(f"{where}: {type(e).__name__}: {e}") from e

        slots.extend([None] * slot_count)
        for spec, s in zip(build.outputs, out_slots):
            slots[s] = spec
        layers.append(build.module)
        records.append(
            LayerRecord(
                slots=out_slots,
                first_slot=slot,
                slot_count=slot_count,
                sources=sources,
                from_list=ctx.from_list,
                written_from=written_from,
                n=ctx.n,
                name=name,
                args=build.args,
                outputs=build.outputs,
                multi_output=build.multi_output,
            )
        )

    saved = {s for record in records for s in record.sources if s != FLOW}
    return BuiltLayers(layers, records, saved)


def _unpack_row(row: Any) -> tuple[Any, int, Any, list[Any]]:
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        raise ConfigError("each row must be [from, number, module, args]")
    written_from, n, name, args = row
    if not is_int(n) or n < 1:
        raise ConfigError(f"number of repeats must be a positive int, got {n!r}")
    if not isinstance(args, list):
        raise ConfigError(f"args must be a list, got {args!r}")
    return written_from, n, name, args


def _resolve_sources(
    written: Any, slots: list[FeatureSpec | None], image: FeatureSpec
) -> tuple[list[int], list[FeatureSpec]]:
    """Map `from` (an int or a list; negative = relative) to absolute slots and their specs."""
    items = written if isinstance(written, list) else [written]
    if not items:
        raise ConfigError("'from' is an empty list")
    sources, inputs = [], []
    for item in items:
        if not is_int(item):
            raise ConfigError(f"'from' entries must be ints, got {item!r}")
        if not slots:  # the first layer reads the image
            if item != -1:
                raise ConfigError(f"the first layer must take the input image (from -1), got from {item}")
            sources.append(FLOW)
            inputs.append(image)
            continue
        absolute = len(slots) + item if item < 0 else item
        if absolute >= len(slots):
            raise ConfigError(f"'from' {item} points forward (layers 0-{len(slots) - 1} exist so far)")
        if absolute < 0:
            raise ConfigError(f"'from' {item} is out of range (layers 0-{len(slots) - 1} exist so far)")
        spec = slots[absolute]
        if spec is None:
            raise ConfigError(f"'from' {item} is an empty slot: the stage there produces no map at that level")
        sources.append(FLOW if item == -1 else absolute)
        inputs.append(spec)
    return sources, inputs


def _assign_slots(outputs: list[FeatureSpec], multi_output: bool, first: int) -> tuple[list[int], int]:
    """Slots for a row's outputs: one slot, or one per pyramid level for a stage (log2 of the stride)."""
    if not multi_output:
        return [first], 1
    levels = []
    for spec in outputs:
        level = math.log2(spec.stride) if spec.stride else float("nan")
        if not level.is_integer() or level < 1:
            raise ConfigError(f"stage output stride {spec.stride} is not a power of two >= 2")
        levels.append(int(level))
    count = max(MIN_PYRAMID_LEVELS, max(levels))
    return [first + level - 1 for level in levels], count


def _symbols(config: ModelConfig) -> dict[str, Any]:
    return {"nc": config.nc, "anchors": config.anchors, "None": None}


def _substitute(arg: Any, symbols: dict[str, Any], config: ModelConfig) -> Any:
    """Replace the names `nc`, `anchors` and `None` by their values; every other arg is data as written."""
    if isinstance(arg, str) and arg in symbols:
        value = symbols[arg]
        if value is None and arg != "None":
            raise ConfigError(f"uses '{arg}' but {config.source} defines no '{arg}'")
        return value
    return arg
