"""Attributions (semprior_core.explain): targets, the window score, and that trained networks' attributions
concentrate around the explained target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semprior_core.config import SCAMConfig
from semprior_core.explain import (
    AttributionOptions,
    Target,
    WindowScore,
    attribute,
    component_region,
    positive_mass_fraction,
)
from semprior_core.models import create_backbone
from semprior_core.scam import Teacher

SIZE = 32
STRIDE = 4  # VFM-like prior grid of the toy teacher


def _scene(rng: np.random.Generator, centers: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Noise background + Gaussian blobs (σ = 1.2 px); the mask is each blob's half-maximum support."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blobs = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.2**2)) for y, x in centers)
    image = 0.3 * rng.standard_normal((SIZE, SIZE)) + 2.0 * blobs
    return image.astype(np.float32), (blobs > 0.5).astype(np.float32)


def _prior(image: torch.Tensor) -> torch.Tensor:
    """A stand-in for VFM features: local maxima and means of the image on a coarse grid (4 channels)."""
    pooled_max = F.max_pool2d(image, STRIDE)
    pooled_mean = F.avg_pool2d(image, STRIDE)
    return torch.cat([pooled_max, pooled_mean, -pooled_mean, pooled_max - pooled_mean], dim=1)


def _batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ims, masks = [], []
    for _ in range(n):
        k = int(rng.integers(1, 3))
        centers = [tuple(int(v) for v in rng.integers(4, SIZE - 4, 2)) for _ in range(k)]
        im, m = _scene(rng, centers)
        ims.append(im)
        masks.append(m)
    return torch.from_numpy(np.stack(ims))[:, None], torch.from_numpy(np.stack(masks))[:, None]


@pytest.fixture(scope="module")
def trained() -> dict:
    """A tiny U-Net student and a SCAM teacher trained (~1.5 s) on blob scenes."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    student = create_backbone("unet", widths=[8, 16])
    teacher = Teacher(create_backbone("unet", widths=[8, 16]), SCAMConfig(stages=[0, 1], vfm_layers=[3, 6], hidden=8),
                      prior_channels=[4, 4], feature_index=[0, 0])
    opt = torch.optim.Adam(list(student.parameters()) + list(teacher.parameters()), lr=0.02)
    weight = torch.tensor(20.0)  # targets are ~1 % of pixels
    for _ in range(40):
        x, y = _batch(rng, 8)
        loss = sum(F.binary_cross_entropy_with_logits(out, y, pos_weight=weight)
                   for out in (student(x), teacher(x, [_prior(x)])))
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    teacher.eval()
    image, mask = _scene(np.random.default_rng(7), [(9, 22)])
    x = torch.from_numpy(image)[None, None]
    return {"student": student, "teacher": teacher, "image": x, "mask": mask, "feats": [_prior(x)], "point": (9, 22)}


def _near(point: tuple[int, int], radius: int) -> np.ndarray:
    return Target(point, radius).window((SIZE, SIZE))


# -- targets -----------------------------------------------------------------------------------
def test_target_window_is_a_clipped_square():
    w = Target((1, 5), radius=2).window((8, 8))
    assert w.sum() == 4 * 5  # rows 0..3 (clipped at the top), columns 3..7
    assert w[0:4, 3:8].all() and not w[4:].any() and not w[:, :3].any()
    with pytest.raises(ValueError, match="outside"):
        Target((8, 0)).window((8, 8))
    with pytest.raises(ValueError, match="radius"):
        Target((0, 0), radius=-1)


def test_component_region_picks_the_component_at_or_near_the_point():
    prob = np.zeros((10, 10))
    prob[1:3, 1:3] = 0.9
    prob[6:9, 6:8] = 0.8
    region = component_region(prob, (5, 5), search=1)
    assert region is not None and region.sum() == 6 and region[6, 6]
    assert component_region(prob, (5, 1), search=1) is None
    assert Target((5, 5), region=region).window((10, 10)).sum() == 6


def test_positive_mass_fraction_counts_only_positive_attribution():
    attr = np.array([[3.0, -5.0], [1.0, 0.0]])
    inside = np.array([[True, True], [False, False]])
    assert positive_mass_fraction(attr, inside) == pytest.approx(0.75)
    assert positive_mass_fraction(-np.abs(attr), inside) == 0.0


def test_options_are_validated():
    with pytest.raises(ValueError, match="n_steps"):
        AttributionOptions(n_steps=1)
    with pytest.raises(ValueError, match="stdevs"):
        AttributionOptions(stdevs=0)


# -- the scalar being explained ----------------------------------------------------------------
def test_window_score_equals_the_windowed_sum_of_the_networks_logits(trained):
    x, feats, t = trained["image"], trained["feats"], trained["teacher"]
    window = torch.from_numpy(_near((9, 22), 2))
    with torch.no_grad():
        want_t = (t(x, feats)[0, 0] * window).sum()
        want_off = (t(x, scam=False)[0, 0] * window).sum()
        want_s = (trained["student"](x)[0, 0] * window).sum()
        assert WindowScore(t, window, feats=feats)(x).item() == pytest.approx(want_t.item(), rel=1e-5)
        assert WindowScore(t, window, scam=False)(x).item() == pytest.approx(want_off.item(), rel=1e-5)
        assert WindowScore(t, window, wrt="vfm", image=x)(*feats).item() == pytest.approx(want_t.item(), rel=1e-5)
        assert WindowScore(trained["student"], window)(x).item() == pytest.approx(want_s.item(), rel=1e-5)
    assert want_t.item() != pytest.approx(want_off.item())  # SCAM does change the teacher's output


def test_window_score_refuses_inconsistent_requests(trained):
    window = torch.ones(SIZE, SIZE)
    with pytest.raises(ValueError, match="feats"):
        WindowScore(trained["teacher"], window)
    with pytest.raises(ValueError, match="SCAM"):
        WindowScore(trained["student"], window, wrt="vfm", image=trained["image"])
    with pytest.raises(ValueError, match="gradcam"):
        attribute(trained["teacher"], trained["image"], Target((9, 22)), "gradcam", feats=trained["feats"], wrt="vfm")
    with pytest.raises(ValueError, match="unknown attribution"):
        attribute(trained["student"], trained["image"], Target((9, 22)), "lime")
    with pytest.raises(ValueError, match="2 encoder stages"):
        attribute(trained["student"], trained["image"], Target((9, 22)), "gradcam", options=AttributionOptions(stage=2))


# -- attributions concentrate on the target ----------------------------------------------------
def test_the_trained_networks_detect_the_target(trained):
    with torch.no_grad():
        for prob in (torch.sigmoid(trained["student"](trained["image"])),
                     torch.sigmoid(trained["teacher"](trained["image"], trained["feats"]))):
            p = prob[0, 0].numpy()
            assert p[9, 22] > 0.5
            assert positive_mass_fraction(p * (p > 0.5), _near((9, 22), 4)) > 0.8


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "smoothgrad"])
@pytest.mark.parametrize("which", ["student", "teacher"])
def test_attributions_concentrate_near_the_target(trained, method, which):
    net = trained[which]
    feats = trained["feats"] if which == "teacher" else None
    res = attribute(net, trained["image"], Target(trained["point"], radius=1), method, feats=feats,
                    options=AttributionOptions(n_steps=64))
    assert res.map.shape == (SIZE, SIZE) and np.isfinite(res.map).all()
    assert res.window.sum() == 9
    # Most of the mass lies in the 7x7 neighbourhood (5 % of the image) of the target at (y=9, x=22).
    assert res.mass_inside(_near(trained["point"], 3)) > (0.8 if method == "integrated_gradients" else 0.5)
    assert res.mass_inside(_near(trained["point"][::-1], 3)) < 0.05  # not at (y=22, x=9)
    if method == "integrated_gradients":
        # Completeness: attributions sum to score(input) - score(baseline).
        with torch.no_grad():
            base = WindowScore(net, torch.from_numpy(res.window), feats=feats)(torch.zeros_like(trained["image"]))
        assert res.map.sum() == pytest.approx(res.score - base.item(), rel=0.05, abs=0.2)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
def test_teacher_attribution_to_vfm_features_concentrates_near_the_target(trained, method):
    res = attribute(trained["teacher"], trained["image"], Target(trained["point"], radius=1), method,
                    feats=trained["feats"], wrt="vfm", options=AttributionOptions(n_steps=64))
    assert set(res.layers) == {0}  # both SCAMs read VFM map 0
    assert res.map.shape == (SIZE, SIZE)
    # Prior cells are 4x4 pixels: the 13x13 neighbourhood covers the target's cell and its neighbours.
    assert res.mass_inside(_near(trained["point"], 6)) > 0.8
    if method == "integrated_gradients":
        # Upsampling the cell grid to pixels conserves the total attribution (completeness again).
        with torch.no_grad():
            base = WindowScore(trained["teacher"], torch.from_numpy(res.window), wrt="vfm", image=trained["image"])
            diff = res.score - base(torch.zeros_like(trained["feats"][0])).item()
        assert res.map.sum() == pytest.approx(diff, rel=0.05, abs=0.2)


@pytest.mark.parametrize("which", ["student", "teacher"])
@pytest.mark.parametrize("stage", [0, -1])
def test_gradcam_matches_a_hand_computed_grad_cam_of_the_stage_output(trained, which, stage):
    """Grad-CAM = ReLU(Σ_c mean(∂score/∂A_c) · A_c) with A the features of encoder stage ``stage`` handed to
    the decoder (after SCAM), upsampled."""
    net, x, feats = trained[which], trained["image"], trained["feats"]
    window = torch.from_numpy(_near(trained["point"], 1)).float()
    backbone = net.backbone if which == "teacher" else net
    with torch.no_grad():
        enc = list(backbone.encode(x))
        if which == "teacher":
            for stage, index, module in zip(net.stages, net.feature_index, net.scams):
                enc[stage] = module(enc[stage], feats[index])
    enc = [e.requires_grad_(True) for e in enc]  # the decoder's inputs, as independent leaves
    score = (backbone.decode(enc, (SIZE, SIZE))[0, 0] * window).sum()
    (grad,) = torch.autograd.grad(score, enc[stage])
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * enc[stage]).sum(dim=1, keepdim=True))
    want = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    res = attribute(net, x, Target(trained["point"], radius=1), "gradcam", feats=feats if which == "teacher" else None,
                    options=AttributionOptions(stage=stage))
    assert (res.map >= 0).all()
    np.testing.assert_allclose(res.map, want, rtol=1e-4, atol=1e-6 * float(np.abs(want).max() + 1))


def test_smoothgrad_is_reproducible_and_leaves_the_global_rng_alone(trained):
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    a = attribute(trained["student"], trained["image"], Target(trained["point"]), "smoothgrad")
    after = torch.rand(1).item()
    b = attribute(trained["student"], trained["image"], Target(trained["point"]), "smoothgrad")
    assert before == after
    np.testing.assert_allclose(a.map, b.map)


def test_attribute_restores_training_mode(trained):
    net = trained["student"]
    net.train()
    try:
        attribute(net, trained["image"], Target(trained["point"]), "saliency")
        assert net.training
    finally:
        net.eval()
