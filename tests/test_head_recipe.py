"""The head owns its training recipe: loss, default hyperparameters, validation IoU, family name, pre-training
step. The engine asks the head, so a new head type is one class (and its loss, one registered class)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.hyperparameters import default_hyp_path
from engine.metadata import ModelMetadata
from losses import LOSSES, AnchorLoss, DFLLoss, build_loss, register_loss
from models.detection_model import DetectionModel
from models.heads import AnchorDetect, DFLDetect
from models.heads.base import HEAD_FAMILIES, head_family
from tests.helpers import ANCHOR_HYP, DFL_HYP
from tests.test_losses import tiny_config


def test_the_two_heads_declare_their_recipe() -> None:
    assert head_family("anchor") is AnchorDetect and head_family("dfl") is DFLDetect
    anchor, dfl = DetectionModel(tiny_config("anchor")), DetectionModel(tiny_config("dfl"))
    assert default_hyp_path(anchor).name == "hyp.scratch-anchor.yaml" and default_hyp_path(anchor).is_file()
    assert default_hyp_path(dfl).name == "hyp.scratch-dfl.yaml" and default_hyp_path(dfl).is_file()
    assert isinstance(build_loss(anchor, ANCHOR_HYP), AnchorLoss) and isinstance(build_loss(dfl, DFL_HYP), DFLLoss)
    assert (anchor.head.val_iou, dfl.head.val_iou) == (0.6, 0.7)  # the references' validation IoUs
    assert ModelMetadata.from_model(anchor).has_objectness and not ModelMetadata.from_model(dfl).has_objectness
    with pytest.raises(ValueError, match="unknown head family 'ssd' .*anchor, dfl"):
        head_family("ssd")
    with pytest.raises(ValueError, match="m.onnx: unknown head family 'ssd'"):
        ModelMetadata.from_dict({"names": {0: "a"}, "stride": 32, "head": "ssd"}, "m.onnx")


def test_a_third_head_type_is_one_class_with_its_loss() -> None:
    @register_loss
    class WideLoss(DFLLoss):
        pass

    class WideHead(DFLDetect):
        family = "wide"
        loss_name = "WideLoss"
        val_iou = 0.55

    try:
        model = DetectionModel(tiny_config("dfl"))
        model.head.__class__ = WideHead  # as if the config's Detect row had built it
        assert type(build_loss(model, DFL_HYP)) is WideLoss
        metadata = ModelMetadata.from_json(ModelMetadata.from_model(model).to_json())
        assert (metadata.head, metadata.val_iou, metadata.has_objectness) == ("wide", 0.55, False)
        assert default_hyp_path(model).name == "hyp.scratch-dfl.yaml"  # inherited from DFLDetect
        with pytest.raises(ValueError, match="'wide' is taken by WideHead"):
            type("OtherHead", (DFLDetect,), {"family": "wide"})
    finally:
        HEAD_FAMILIES.pop("wide", None)
        LOSSES.pop("WideLoss", None)


def test_only_the_anchor_head_prepares_for_the_data() -> None:
    # flat boxes (about 55 x 3 px at 64 px) that no configured anchor matches: AutoAnchor refits the anchors
    rng = np.random.default_rng(0)
    wh = np.column_stack([rng.uniform(0.8, 0.95, 20), rng.uniform(0.04, 0.06, 20)])
    labels = [np.column_stack([np.zeros(20), np.full((20, 2), 0.5), wh])]
    dataset = SimpleNamespace(labels=labels, shapes=[(64, 64)])
    anchor, dfl = DetectionModel(tiny_config("anchor")), DetectionModel(tiny_config("dfl"))
    anchors_before = anchor.head.anchors.clone()
    dfl_before = {k: v.clone() for k, v in dfl.state_dict().items()}
    anchor.head.prepare_training(dataset, ANCHOR_HYP, imgsz=64, seed=0)
    dfl.head.prepare_training(dataset, DFL_HYP, imgsz=64, seed=0)
    assert not torch.equal(anchor.head.anchors, anchors_before)
    assert all(torch.equal(v, dfl.state_dict()[k]) for k, v in dfl_before.items())
