from __future__ import annotations

import math

import pytest
import torch

from semprior_core.config import load_config
from semprior_core.models import create_backbone, list_backbones
from semprior_core.networks import build_student, build_teacher


@pytest.mark.parametrize("name", list_backbones())
def test_output_prior_sets_head_bias(name):
    torch.manual_seed(0)
    net = create_backbone(name).eval()
    x = torch.randn(1, 1, 64, 64)
    before = net(x)
    net.init_output_prior(0.01)
    after = net(x)
    # Only the final bias moved, so every logit shifts by the same amount: to logit(0.01) − old bias.
    shift = (after - before).flatten()
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-4)
    assert torch.sigmoid(after).mean() < 0.1


def test_teacher_and_student_share_the_factory():
    cfg = load_config(None, ["model.options={widths: [4, 8, 16]}", "vfm.name=contrast", "vfm.layers=[3]",
                             "scam.stages=[0, 1]", "scam.vfm_layers=[3, 3]"])
    s, t = build_student(cfg), build_teacher(cfg)
    assert type(t.backbone) is type(s)
    assert t.backbone.head.bias.item() == pytest.approx(math.log(0.01 / 0.99))
    assert len(t.scams) == 2
    off = build_teacher(load_config(None, ["model.options={widths: [4, 8, 16]}", "vfm.name=contrast", "scam.enabled=false"]))
    assert len(off.scams) == 0
