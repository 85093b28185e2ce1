"""Fusing folds every BatchNorm and re-parameterizable block without changing outputs, for every config."""

from __future__ import annotations

import io

import pytest
import torch

from models.detection_model import DetectionModel
from models.reparam import has_batchnorm, randomize_batchnorm
from tests.helpers import case_id, config_cases
from utils.compare import relative_max_difference

CASES = config_cases()


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fuse_keeps_outputs(case: tuple[str, str | None]) -> None:
    cfg, scale = case
    model = randomize_batchnorm(DetectionModel(cfg, nc=4, scale=scale)).eval()
    image = torch.rand(2, 3, 128, 96)
    with torch.no_grad():
        unfused = model(image)
        model.fuse()
        fused = model(image)
        assert not has_batchnorm(model)
        assert relative_max_difference(unfused, fused) <= 1e-4

        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.fuse()  # idempotent: nothing changes the second time
        again = model.state_dict()  # once: building a state dict per key is quadratic in the model size
        assert again.keys() == state.keys()
        assert all(torch.equal(again[k], v) for k, v in state.items())

        # a fused model saves and loads into a model built directly in fused form
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        rebuilt = DetectionModel(cfg, nc=4, scale=scale, fused=True).eval()
        rebuilt.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
        assert relative_max_difference(fused, rebuilt(image)) == 0
