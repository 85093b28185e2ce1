"""Reading another framework's pickled torch file without running anything from it.

YOLOv5 and ultralytics save their checkpoints with `torch.save` of live objects (the model is a pickled
`nn.Module` of their classes), which `torch.load(weights_only=True)` rightly refuses and `weights_only=False`
would execute: a pickle names any importable callable and the unpickler calls it. Here the unpickler's one
door to Python, `find_class`, hands out real objects only for tensor and storage reconstruction and plain
containers; every other name becomes a `ForeignObject` subclass created on the spot that records its name,
its constructor arguments and the state pickle gives it, and does nothing else. Nothing is imported, so the
file's module names never reach `importlib`, and nothing named in the file is ever called.

The zip container, storages and `persistent_load` are torch's own (`torch.load` with this module as its
`pickle_module`), so tensors come back exactly as torch would build them.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import torch
import torch._utils

from utils.errors import UserError


class ForeignFileError(UserError, ValueError):
    """A file the restricted reader cannot read (not a torch zip file, a TorchScript archive, corrupt)."""


class ForeignObject:
    """An inert stand-in for an object of a class named in a foreign pickle.

    `foreign_name` (on the class) is the dotted name the file gave; `args`/`kwargs` what the file passed to
    its constructor, `state` what it passed to `__setstate__` (an `nn.Module`'s `__dict__`: `_parameters`,
    `_buffers`, `_modules`, plain attributes), and `items`/`list_items` what it added as a dict or list subclass.
    """

    foreign_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> ForeignObject:
        instance = super().__new__(cls)
        instance.args, instance.kwargs = args, kwargs
        instance.state, instance.items, instance.list_items = None, {}, []
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # REDUCE calls the class with its arguments; __new__ has recorded them already (NEWOBJ skips __init__)
        if args or kwargs:
            self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # dict and list subclasses are filled with SETITEMS / APPENDS after construction
    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    @property
    def attributes(self) -> dict[str, Any]:
        """The recorded state as a dict (pickle's (dict, slots) pair merged), or {} when there is none."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:
            merged = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<foreign {self.foreign_name}>"


_PLACEHOLDER_CLASSES: dict[str, type[ForeignObject]] = {}


def placeholder_class(dotted_name: str) -> type[ForeignObject]:
    """The ForeignObject subclass standing for `dotted_name` (one per name, so identical names compare equal).

    It is a class (not an instance) because pickle's NEWOBJ opcode insists on calling `cls.__new__`.
    """
    cls = _PLACEHOLDER_CLASSES.get(dotted_name)
    if cls is None:
        short = dotted_name.rsplit(".", 1)[-1] or "Foreign"
        cls = type(short, (ForeignObject,), {"foreign_name": dotted_name, "__module__": __name__})
        _PLACEHOLDER_CLASSES[dotted_name] = cls
    return cls


def _reconstructor(cls: Any, base: Any, state: Any) -> ForeignObject:
    """copyreg._reconstructor (protocol 0/1 objects), for placeholder classes only: no real class is built."""
    if not (isinstance(cls, type) and issubclass(cls, ForeignObject)):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


# Names whose real object is handed out: tensor and storage reconstruction (the functions torch's own
# weights-only unpickler allows for dense tensors) and plain containers. Nothing here runs code named by data.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("copyreg", "_reconstructor"): _reconstructor,
}

# Protocol 0-2 pickles name some modules as Python 2 did (pickle's own find_class maps them back; ours must too).
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` never imports: allowed names map to their objects, others to placeholders.

    Storage classes (`torch.HalfStorage`, ...) are resolved by torch's wrapper around this class before they
    reach it (torch.serialization._load); dtypes are returned only when the name really is a `torch.dtype`.
    """

    def find_class(self, module: str, name: str) -> Any:
        module = _PYTHON2_MODULES.get(module, module)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return placeholder_class(f"{module}.{name}")


def _load(file: BinaryIO, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load calls a pickle module: it subclasses `Unpickler` (adding storage lookup and persistent_load).
RESTRICTED_PICKLE = SimpleNamespace(__name__="restricted_pickle", Unpickler=RestrictedUnpickler, load=_load)


def load_restricted(path: str | Path) -> Any:
    """The object a torch zip file holds, every non-tensor class in it replaced by a ForeignObject placeholder.

    Only the zip format (torch >= 1.6, what YOLOv5 and ultralytics write) is read; TorchScript archives and
    legacy or plain pickle files are refused, since torch would hand them to other readers.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ForeignFileError(f"{path} is not a torch zip file")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise ForeignFileError(f"{path} is a zip file without a torch pickle (data.pkl)")
    if any(n.endswith("/constants.pkl") for n in names):
        raise ForeignFileError(f"{path} is a TorchScript archive, not a checkpoint")
    data = path.read_bytes()  # torch reads the very bytes checked above
    try:
        # weights_only=False only because a pickle_module is given: every global goes through its find_class
        return torch.load(io.BytesIO(data), map_location="cpu", pickle_module=RESTRICTED_PICKLE, weights_only=False)
    except Exception as e:  # a damaged file; nothing in it could have run
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ForeignFileError(f"{path}: cannot read the pickle ({type(e).__name__}: {detail})") from None
