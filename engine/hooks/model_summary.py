"""The model's layer table and summary line (layers, parameters, GFLOPs) at the start of training, as the
references print them, so a log says what was trained."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hooks.base import Hook
from models.summary import layer_table, summary_line
from utils.logging import LOGGER
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from engine.trainer import Trainer

SUMMARY_IMGSZ = 640  # GFLOPs at 640, the size the references (and the README's tables) report


class ModelSummaryHook(Hook):
    """`yolo11.yaml (n) summary: 395 layers, 2,590,230 parameters, 6.4 GFLOPs` after the layer table."""

    main_process_only = True

    def before_train(self, trainer: Trainer) -> None:
        model = unwrap_model(trainer.model)
        raw = model.yaml
        name = str(raw.get("yaml_file", "model")) + (f" ({raw['scale']})" if raw.get("scale") else "")
        LOGGER.info(layer_table(model.model, model.records))
        LOGGER.info(summary_line(name, model, SUMMARY_IMGSZ, remember=True))
