"""Tests of SCAM and the Teacher (semprior_core.scam).

The generic tests run on every registered backbone with a SCAM at every encoder stage (64×64 inputs,
a 16-channel prior at 1/8 resolution).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semprior_core.config import SCAMConfig
from semprior_core.models import create_backbone, list_backbones
from semprior_core.scam import SCAM, Teacher

BACKBONES = list_backbones()
PRIOR_CH = 16


def _cfg(n_stages: int, mode: str = "spatial", gate: str = "tanh", hidden: int = 8) -> SCAMConfig:
    stages = list(range(n_stages))
    return SCAMConfig(stages=stages, vfm_layers=[i + 1 for i in stages], hidden=hidden, mode=mode, gate=gate)


def _teacher(name: str, mode: str = "spatial", gate: str = "tanh", seed: int = 0) -> Teacher:
    torch.manual_seed(seed)
    backbone = create_backbone(name)
    n = len(backbone.feature_info)
    return Teacher(backbone, _cfg(n, mode, gate), prior_channels=[PRIOR_CH] * n, feature_index=[0] * n)


def _inputs(batch: int = 2, size: int = 64, seed: int = 1) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 1, size, size, generator=g)
    prior = torch.randn(batch, PRIOR_CH, size // 8, size // 8, generator=g)
    return image, [prior]


def _randomise_out_layers(teacher: Teacher, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in teacher.scams:
            m.out_layer.weight.copy_(0.3 * torch.randn(m.out_layer.weight.shape, generator=g))
            m.out_layer.bias.copy_(0.3 * torch.randn(m.out_layer.bias.shape, generator=g))


@pytest.mark.parametrize("mode", ["spatial", "global"])
@pytest.mark.parametrize("name", BACKBONES)
def test_identity_at_init(name, mode):
    teacher = _teacher(name, mode).eval()
    image, feats = _inputs()
    with torch.no_grad():
        assert torch.equal(teacher(image, feats), teacher.backbone(image))


@pytest.mark.parametrize("name", BACKBONES)
def test_shapes_and_maps_on_every_backbone(name):
    teacher = _teacher(name).eval()
    _randomise_out_layers(teacher)
    image, feats = _inputs()
    with torch.no_grad():
        out = teacher(image, feats)
        bare = teacher.backbone(image)
    assert out.shape == (2, 1, 64, 64)
    assert not torch.allclose(out, bare)  # the modulation reaches the logits
    maps = teacher.modulation_maps(image, feats)
    assert [m["stage"] for m in maps] == list(range(len(teacher.backbone.feature_info)))
    for m, info in zip(maps, teacher.backbone.feature_info, strict=True):
        side = 64 // info.stride
        assert (
            m["gamma"].shape
            == m["beta"].shape
            == m["before"].shape
            == m["after"].shape
            == (2, info.channels, side, side)
        )
        assert m["gate"].shape == (info.channels,)
        assert m["vfm_index"] == 0
        g = m["gate"][None, :, None, None]
        torch.testing.assert_close(m["after"], m["before"] * (1 + g * m["gamma"]) + g * m["beta"])


def test_global_maps_broadcast_per_channel():
    teacher = _teacher("unet", "global").eval()
    _randomise_out_layers(teacher)
    image, feats = _inputs()
    for m, info in zip(teacher.modulation_maps(image, feats), teacher.backbone.feature_info, strict=True):
        assert m["gamma"].shape == m["beta"].shape == (2, info.channels, 1, 1)
        assert m["after"].shape == (2, info.channels, 64 // info.stride, 64 // info.stride)


def test_spatial_scam_by_hand():
    """Constant γ, β from the last layer's bias (its weight zero): F' = F(1 + gγ) + gβ with g = 0.5."""
    scam = SCAM(channels=2, prior_channels=3, hidden=4)
    with torch.no_grad():
        scam.out_layer.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))  # γ = (1, -2), β = (0.5, 3)
    feat = torch.tensor([2.0, 4.0]).view(1, 2, 1, 1).expand(1, 2, 5, 5)
    out = scam(feat, torch.randn(1, 3, 2, 2))
    # channel 0: 2·(1 + 0.5·1) + 0.5·0.5 = 3.25; channel 1: 4·(1 - 0.5·2) + 0.5·3 = 1.5
    assert torch.allclose(out[0, 0], torch.full((5, 5), 3.25))
    assert torch.allclose(out[0, 1], torch.full((5, 5), 1.5))


def test_spatial_scam_is_local_and_resized_from_prior_resolution():
    """γ, β are computed per prior cell (a change at one cell moves only that cell) and then resized bilinearly."""
    torch.manual_seed(0)
    scam = SCAM(channels=4, prior_channels=6, hidden=8)
    with torch.no_grad():
        scam.out_layer.weight.normal_()
    prior = torch.randn(1, 6, 8, 8)
    feat = torch.randn(1, 4, 8, 8)
    _, base = scam(feat, prior, return_maps=True)
    poked = prior.clone()
    poked[0, :, 3, 5] += 5.0
    _, moved = scam(feat, poked, return_maps=True)
    changed = (moved["gamma"] - base["gamma"]).abs().sum(dim=(0, 1)) > 0
    assert changed[3, 5] and changed.sum() == 1
    big = torch.randn(1, 4, 32, 32)
    _, up = scam(big, prior, return_maps=True)
    low = scam.head(prior)
    torch.testing.assert_close(up["gamma"], F.interpolate(low, size=(32, 32), mode="bilinear")[:, :4])


@pytest.mark.parametrize("gate", ["tanh", "sigmoid"])
@pytest.mark.parametrize("mode", ["spatial", "global"])
def test_gradients_reach_gamma_beta_and_gate(mode, gate):
    """Step 0: only the zero-initialised last layer learns (γ = β = 0 give the gate and the earlier layers no
    signal); after one SGD step every SCAM parameter has a non-zero gradient."""
    teacher = _teacher("unet", mode, gate)
    image, feats = _inputs(batch=1, size=32)
    target = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.9).float()
    opt = torch.optim.SGD(teacher.scams.parameters(), lr=0.1)

    def grads() -> dict[str, float]:
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(teacher(image, feats), target).backward()
        m = teacher.scams[1]
        return {
            "out": m.out_layer.weight.grad.abs().sum().item(),
            "first": m.head[0].weight.grad.abs().sum().item(),
            "gate": m.gate_param.grad.abs().sum().item(),
        }

    g0 = grads()
    assert g0["out"] > 0 and g0["gate"] == 0 and g0["first"] == 0
    opt.step()
    g1 = grads()
    assert all(v > 0 for v in g1.values()), g1


def test_teacher_without_scams_is_the_backbone():
    torch.manual_seed(0)
    backbone = create_backbone("unet").eval()
    teacher = Teacher(backbone, SCAMConfig(), prior_channels=[], feature_index=[])
    image, _ = _inputs()
    assert len(teacher.scams) == 0 and teacher.backbone is backbone
    assert teacher.size_divisor == backbone.size_divisor
    with torch.no_grad():
        assert torch.equal(teacher(image), backbone(image))
    assert teacher.gate_penalty().item() == 0.0
    assert teacher.modulation_maps(image, []) == []
    disabled = Teacher(
        backbone, SCAMConfig(enabled=False), prior_channels=[PRIOR_CH] * 3, feature_index=[0] * 3
    )
    assert len(disabled.scams) == 0


def test_scam_off_equals_backbone_after_training():
    teacher = _teacher("unet")
    image, feats = _inputs(batch=1, size=32)
    opt = torch.optim.SGD(teacher.scams.parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        teacher(image, feats).sigmoid().mean().backward()
        opt.step()
    teacher.eval()
    with torch.no_grad():
        bare = teacher.backbone(image)
        assert torch.equal(teacher(image, feats, scam=False), bare)
        assert not torch.allclose(teacher(image, feats), bare)


def test_feature_index_selects_the_vfm_layer():
    torch.manual_seed(0)
    backbone = create_backbone("unet").eval()
    cfg = SCAMConfig(stages=[2], vfm_layers=[9])
    teacher = Teacher(backbone, cfg, prior_channels=[PRIOR_CH], feature_index=[1])
    image, (prior,) = _inputs()
    wrong = torch.randn(2, 5, 8, 8)  # 5 channels: would fail if stage 2 read feats[0]
    with torch.no_grad():
        out = teacher(image, [wrong, prior])
    assert out.shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="feature_index"):
        teacher(image, [prior])
    with pytest.raises(ValueError, match="feats"):
        teacher(image)


def test_bad_configuration_errors_name_the_field():
    backbone = create_backbone("unet")  # 4 stages
    with pytest.raises(ValueError, match="scam.stages"):
        Teacher(backbone, SCAMConfig(stages=[0, 4], vfm_layers=[3, 6]), [PRIOR_CH] * 2, [0, 0])
    with pytest.raises(ValueError, match="scam.stages"):
        Teacher(backbone, SCAMConfig(stages=[0, 1, 2], vfm_layers=[3, 6, 9]), [PRIOR_CH] * 2, [0, 0])
    with pytest.raises(ValueError, match="feature_index"):
        Teacher(backbone, SCAMConfig(stages=[0, 1], vfm_layers=[3, 6]), [PRIOR_CH] * 2, [0])
    with pytest.raises(ValueError, match="scam.mode"):
        SCAM(8, 8, 8, mode="local")  # type: ignore[arg-type]


def test_gate_penalty_by_hand():
    torch.manual_seed(0)
    backbone = create_backbone("unet")  # stage widths 16, 32, 64, 128
    teacher = Teacher(backbone, SCAMConfig(stages=[0, 1], vfm_layers=[3, 6]), [PRIOR_CH] * 2, [0, 0])
    assert teacher.gate_penalty().item() == pytest.approx(0.5)  # g = 0.5 at init
    with torch.no_grad():
        teacher.scams[0].gate_param.fill_(math.atanh(0.5))  # 16 channels of |g| = 0.5
        teacher.scams[1].gate_param.fill_(math.atanh(-0.25))  # 32 channels of |g| = 0.25
    # mean over all 48 gate channels: (16·0.5 + 32·0.25) / 48 = 1/3
    assert teacher.gate_penalty().item() == pytest.approx(1 / 3, abs=1e-6)
    sig = Teacher(backbone, SCAMConfig(stages=[3], vfm_layers=[3], gate="sigmoid"), [PRIOR_CH], [0])
    with torch.no_grad():
        sig.scams[0].gate_param.fill_(math.log(0.2 / 0.8))  # sigmoid -> 0.2
    assert sig.gate_penalty().item() == pytest.approx(0.2, abs=1e-6)
