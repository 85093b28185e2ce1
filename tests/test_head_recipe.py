"""The head owns its training recipe: loss, default hyperparameters, validation IoU, family name, pre-training
step. The engine asks the head, so a new head type is one class (and its loss, one registered class)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from engine.hyperparameters import HYP_DIR, HyperparameterError, default_hyp_path, hyperparameters_for
from engine.metadata import ModelMetadata
from losses import (
    LOSSES,
    AlignedAnchorLoss,
    AnchorLoss,
    DFLLoss,
    UnknownLossError,
    build_loss,
    loss_class,
    losses_for,
    register_loss,
)
from models.detection_model import DetectionModel
from models.heads import AnchorDetect, DFLDetect
from models.heads.base import HEAD_FAMILIES, head_family
from tests.helpers import ALIGNED_HYP, ANCHOR_HYP, DFL_HYP
from tests.test_losses import tiny_config
from utils.errors import UserError


def test_the_two_heads_declare_their_recipe() -> None:
    assert head_family("anchor") is AnchorDetect and head_family("dfl") is DFLDetect
    anchor, dfl = DetectionModel(tiny_config("anchor")), DetectionModel(tiny_config("dfl"))
    assert default_hyp_path(anchor).name == "hyp.scratch-anchor.yaml" and default_hyp_path(anchor).is_file()
    assert default_hyp_path(dfl).name == "hyp.scratch-dfl.yaml" and default_hyp_path(dfl).is_file()
    assert isinstance(build_loss(anchor, ALIGNED_HYP), AlignedAnchorLoss) and isinstance(
        build_loss(dfl, DFL_HYP), DFLLoss
    )
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


def test_each_loss_names_its_head_and_hyperparameter_file() -> None:
    anchor, dfl = DetectionModel(tiny_config("anchor")), DetectionModel(tiny_config("dfl"))
    files = {name: LOSSES[name].hyp_file for name in ("AlignedAnchorLoss", "AnchorLoss", "DFLLoss")}
    assert files == {
        "AlignedAnchorLoss": "hyp.scratch-anchor.yaml",
        "AnchorLoss": "hyp.scratch-yolov5.yaml",
        "DFLLoss": "hyp.scratch-dfl.yaml",
    }
    assert all((HYP_DIR / name).is_file() for name in files.values())
    assert losses_for(anchor.head) == ["AlignedAnchorLoss", "AnchorLoss"] and losses_for(dfl.head) == ["DFLLoss"]
    assert default_hyp_path(anchor, "AnchorLoss").name == "hyp.scratch-yolov5.yaml"
    assert type(build_loss(anchor, ANCHOR_HYP, name="AnchorLoss")) is AnchorLoss
    assert type(build_loss(anchor, ALIGNED_HYP, name="AlignedAnchorLoss")) is AlignedAnchorLoss


def test_a_loss_for_another_head_or_unknown_is_one_line() -> None:
    anchor, dfl = DetectionModel(tiny_config("anchor")), DetectionModel(tiny_config("dfl"))
    with pytest.raises(UnknownLossError) as error:
        loss_class(anchor, "DFLLoss")
    assert str(error.value) == (
        "--loss DFLLoss: it trains DFLDetect heads, not AnchorDetect; "
        "losses for this model: AlignedAnchorLoss, AnchorLoss"
    )
    with pytest.raises(UnknownLossError, match="--loss Nope: unknown loss; losses for this model: DFLLoss$"):
        loss_class(dfl, "Nope")
    assert isinstance(error.value, UserError)  # the scripts print it as one `error:` line


def test_a_yolov5_hyp_file_is_refused_by_the_aligned_loss(tmp_path: Path) -> None:
    anchor = DetectionModel(tiny_config("anchor"))
    yolov5_file = HYP_DIR / "hyp.scratch-yolov5.yaml"
    with pytest.raises(HyperparameterError) as error:
        hyperparameters_for(anchor, yolov5_file, "AlignedAnchorLoss")  # its box gain 0.05 is for YOLOv5's loss
    assert str(error.value) == (
        f"{yolov5_file}: anchor_t, cls_pw, fl_gamma, obj_pw belong to AnchorLoss, but this run trains with "
        "AlignedAnchorLoss; pass --loss AnchorLoss to train with that loss and these gains"
    )
    assert hyperparameters_for(anchor, yolov5_file, "AnchorLoss").loss.box == 0.05
    dfl_file = HYP_DIR / "hyp.scratch-dfl.yaml"  # another head's keys stay allowed: one file may serve both
    union = yaml.safe_load(dfl_file.read_text()) | {"anchor_t": 4.0, "obj": 1.0, "obj_pw": 1.0}
    union_file = tmp_path / "union.yaml"
    union_file.write_text(yaml.safe_dump(union))
    assert hyperparameters_for(DetectionModel(tiny_config("dfl")), union_file).loss.dfl == union["dfl"]
