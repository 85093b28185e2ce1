"""Name resolution: registered layers, torch.nn layers, unknown names with close matches, duplicates."""

from __future__ import annotations

import pytest
import torch.nn as nn

import models.layers  # noqa: F401
from models.layer_spec import LAYERS, resolve_layer
from models.registry import Registry, UnknownNameError


def test_registered_and_torch_names_resolve() -> None:
    assert resolve_layer("C3k2").cls.__name__ == "C3k2"
    assert resolve_layer("nn.Upsample").cls is nn.Upsample


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean.*C3k2"):
        resolve_layer("C3K2")
    with pytest.raises(UnknownNameError, match="SPPF"):
        resolve_layer("SPFF")


def test_unknown_torch_name() -> None:
    with pytest.raises(UnknownNameError, match="Upsample"):
        resolve_layer("nn.Upsampel")


@pytest.mark.parametrize("name", ["__import__('os').system('x')", "nn.modules.conv.Conv2d", "os.system", 3])
def test_non_identifiers_are_refused(name: object) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        resolve_layer(name)


def test_duplicate_registration_raises() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("a", 2)
    with pytest.raises(ValueError, match="already registered"):
        LAYERS.add("Conv", LAYERS.get("Conv"))


def test_remove_unregisters_and_names_unknown_names() -> None:
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    assert registry.remove("a") == 1 and "a" not in registry
    registry.add("a", 2)  # the name is free again
    with pytest.raises(UnknownNameError, match="unknown thing 'b'"):
        registry.remove("b")


def test_only_project_layers_stay_registered() -> None:
    """A test that registers a layer (test_multi_output's ToyStage) removes it in its fixture's teardown; in the
    whole suite this runs after those tests, so a leaked test layer fails here."""
    leaked = [name for name in LAYERS if not LAYERS.get(name).cls.__module__.startswith("models.")]
    assert not leaked, leaked
