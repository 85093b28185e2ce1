"""validate() measures a model without changing it: no cast, no moved weights, its training mode restored."""

from __future__ import annotations

from pathlib import Path

import torch

from dataio.data_config import load_data_config
from dataio.dataset import YoloDataset
from dataio.loader import build_dataloader
from engine.ema import ModelEMA
from engine.validator import validate
from losses import build_loss
from models.detection_model import DetectionModel
from tests.helpers import DFL_HYP


def test_validate_under_autocast_leaves_the_ema_weights_untouched(tiny_data: Path) -> None:
    model = DetectionModel("yolo11n.yaml", nc=2)
    ema = ModelEMA(model)
    for _ in range(3):  # EMA weights off the initial values, with bits a half-precision round trip would lose
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 1e-3)
        ema.update(model)
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    data = load_data_config(tiny_data)
    dataset = YoloDataset(data.val, imgsz=64, augment=False, rect=True, stride=32, batch_size=4, pad=0.5, nc=2)
    loader = build_dataloader(dataset, 4, workers=0, shuffle=False)

    result = validate(ema.ema, loader, names=data.names, loss_fn=build_loss(model, DFL_HYP), half=True)

    after = ema.ema.state_dict()
    changed = [k for k in before if before[k].dtype != after[k].dtype or not torch.equal(before[k], after[k])]
    assert not changed, f"{len(changed)} tensors changed, e.g. {changed[:3]}"
    assert not ema.ema.training  # the EMA copy stays in eval mode
    assert len(result.losses) == 3 and all(torch.isfinite(torch.tensor(result.losses)))
