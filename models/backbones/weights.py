"""Loading ImageNet checkpoints into backbone stages: one path for every backbone.

The YAML `weights` argument (the stage's build rule, `MultiOutputStage.from_config`, loads it once the stage
is built) and train.py's `--backbone-weights FILE` (`load_backbone_weights`, after the model is built) both
end in `load_stage_weights`. A stage that can take a reference checkpoint (timm's, torchvision's) implements
`convert_state_dict(state_dict) -> dict` (the checkpoint's names -> the stage's, classifier/head dropped);
without it the checkpoint must use the stage's own names. Loading reports how many tensors went into each
part of the stage (`stem`, `stages.0`, ...), and loading nothing, or a tensor whose shape does not fit, is an
error that names the file. Nothing is ever downloaded.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from utils.errors import UserError
from utils.logging import LOGGER

StateDict = Mapping[str, torch.Tensor]


class BackboneWeightsError(UserError, ValueError):
    """A backbone checkpoint that cannot be used; the message names the file."""


class BackboneWeightsNotFoundError(BackboneWeightsError, FileNotFoundError):
    """A backbone checkpoint path that names no file (both a BackboneWeightsError and a FileNotFoundError)."""


def resolve_weights_argument(weights: Any, stage_name: str) -> Path | None:
    """Interpret a stage's `weights` (YAML `pretrained`) argument: False/None -> None, a path -> that file.

    True (download the pretrained weights) is refused: nothing can be downloaded here, a local file must be given.
    """
    if weights is None or weights is False:
        return None
    if weights is True:
        raise BackboneWeightsError(
            f"{stage_name}: pretrained=True would need a download, which this project never does; "
            "download the checkpoint yourself and give its local path instead of True "
            "(in the YAML args, or with --backbone-weights FILE)"
        )
    if not isinstance(weights, (str, Path)):
        raise BackboneWeightsError(f"{stage_name}: weights must be False, None or a checkpoint path, got {weights!r}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BackboneWeightsNotFoundError(f"{stage_name}: backbone checkpoint '{weights}' does not exist")
    return path


def read_state_dict(path_or_state_dict: str | Path | StateDict) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a checkpoint (a raw state dict or a {'state_dict'|'model': ...} wrapper) and its name."""
    if isinstance(path_or_state_dict, (str, Path)):
        source = str(path_or_state_dict)
        if not Path(source).is_file():
            raise BackboneWeightsNotFoundError(f"backbone checkpoint '{source}' does not exist")
        loaded = _load_safetensors(source) if source.endswith(".safetensors") else _load_torch(source)
    else:
        source, loaded = "<state dict>", path_or_state_dict
    for key in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping):
        raise BackboneWeightsError(f"{source}: expected a state dict (name -> tensor), got {type(loaded).__name__}")
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if any(k.startswith("module.") for k in tensors):  # saved from DataParallel/DistributedDataParallel
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors, source


def under_prefix(state_dict: StateDict, own_keys: Collection[str], prefix: str) -> dict[str, torch.Tensor] | None:
    """For a stage that wraps a model as `prefix` (e.g. `body.`): the checkpoint in the stage's names when it is
    the stage's own (keys with the prefix) or the wrapped model's (every key found once the prefix is added);
    None when it is neither (e.g. a full classifier whose head the stage dropped)."""
    if any(k in own_keys for k in state_dict):
        return dict(state_dict)
    prefixed = {prefix + k: v for k, v in state_dict.items()}
    return prefixed if prefixed and prefixed.keys() <= set(own_keys) else None


def _load_torch(source: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's paragraph ends by suggesting weights_only=False: never passed on
        raise BackboneWeightsError(
            f"{source}: refused: it holds Python objects, not only tensors and plain data (loading it could run code)"
        ) from None
    except Exception as e:  # truncated file, not a torch file...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BackboneWeightsError(f"{source}: cannot read as a weights-only torch checkpoint: {reason}") from None


def _load_safetensors(source: str) -> dict[str, torch.Tensor]:
    """timm's hub checkpoints are `model.safetensors`; reading them needs the optional `safetensors` package."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise BackboneWeightsError(f"{source}: reading .safetensors files needs `pip install safetensors`") from None
    try:
        return load_file(source, device="cpu")
    except Exception as e:
        raise BackboneWeightsError(f"{source}: cannot read as a safetensors file: {e}") from None


def stage_group(key: str) -> str:
    """The part of a stage a tensor belongs to: `stem`, `stages.2`, ... (first name, plus its index if any)."""
    parts = key.removeprefix("body.").split(".")  # a wrapped timm/torchvision model sits under `body.`
    if len(parts) > 2 and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def load_stage_weights(stage: nn.Module, path_or_state_dict: str | Path | StateDict) -> dict[str, int]:
    """Load a checkpoint (a reference's names or the stage's own) into `stage`; returns tensors loaded per group.

    Reads `torch.save` files with `weights_only=True` and `.safetensors` files (timm's hub format). A stage's
    `convert_state_dict` may refuse a checkpoint (ValueError), and its `prepare_for_state_dict(converted)`
    may adapt the stage (or refuse, with ValueError) before loading.
    Raises BackboneWeightsError naming the file when no tensor matches or when a matching name has another shape.
    """
    tensors, source = read_state_dict(path_or_state_dict)
    stage_name = type(stage).__name__
    converter = getattr(stage, "convert_state_dict", None)
    prepare = getattr(stage, "prepare_for_state_dict", None)
    try:  # a stage's own ValueError (wrong variant, fused stage, ...) is reported with the file's name
        converted = converter(tensors) if converter is not None else dict(tensors)
        if prepare is not None:  # e.g. fuse a MobileOne stage before loading a re-parameterized (deploy) checkpoint
            prepare(converted)
    except ValueError as e:
        raise BackboneWeightsError(f"{source}: {e}") from None

    own = stage.state_dict()
    matched = {k: v for k, v in converted.items() if k in own}
    if not matched:
        names = list(converted) or list(tensors)  # a converter may place nothing: show what the file holds
        example = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "no tensors"
        raise BackboneWeightsError(
            f"{source}: no tensor matches {stage_name} (checkpoint names{' after conversion' if converted else ''}: "
            f"{example}); is it a checkpoint of this backbone?"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        raise BackboneWeightsError(
            f"{source}: {len(wrong)} tensor shapes do not fit {stage_name} (checkpoint vs model; another variant "
            f"or width factor?): {'; '.join(wrong[:3])}"
        )
    stage.load_state_dict(matched, strict=False)

    counts = dict(Counter(stage_group(k) for k in own if k in matched))  # groups in the stage's own order
    missing = [k for k in own if k not in matched]
    unused = [k for k in converted if k not in own]
    summary = ", ".join(f"{group} {n}" for group, n in counts.items())
    LOGGER.info(f"{stage_name}: loaded {len(matched)}/{len(own)} tensors from {source} ({summary})")
    if missing:
        LOGGER.warning(
            f"{stage_name}: {len(missing)} tensors not in {source} keep their initial values, e.g. {missing[0]}"
        )
    if unused:
        LOGGER.warning(f"{stage_name}: {len(unused)} tensors of {source} were not used, e.g. {unused[0]}")
    return counts


def load_backbone_weights(model: nn.Module, path: str | Path) -> dict[str, int]:
    """Load a backbone checkpoint into the first multi-output stage of `model` (train.py's --backbone-weights)."""
    from models.backbones.stage import MultiOutputStage  # here, not at the top: stage.py's build rule imports us

    stage = next((m for m in model.modules() if isinstance(m, MultiOutputStage)), None)
    if stage is None:
        raise BackboneWeightsError(f"{path}: the model has no backbone stage (multi-output stage) to load it into")
    return load_stage_weights(stage, path)


def rename_keys(
    state_dict: StateDict, rules: list[tuple[str, str]], drop: str | None = None
) -> dict[str, torch.Tensor]:
    """Apply regex substitutions `rules` in order to every key; keys matching `drop` (a regex) are left out."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    dropped = re.compile(drop) if drop else None
    out = {}
    for key, value in state_dict.items():
        if dropped is not None and dropped.search(key):
            continue
        for pattern, replacement in compiled:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out
