"""Losses are per-sample shares of the upstream BATCH losses (LESPS focal, BasicIRSTD soft IoU, PAL
edge OHEM) and the distillation is normalised like them. Values are checked against arithmetic
written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from semprior_core import losses as L


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def t64(values, shape) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def focal_px(x: float, y: float) -> float:
    """LESPS's per-pixel focal loss, written out."""
    p = sig(x)
    return -(y * (1 - p) ** 2 * math.log(p) + (1 - y) ** 4 * p**2 * math.log(1 - p))


# ---------------------------------------------------------------- focal


def test_focal_hand_value_with_soft_pixel():
    x = t64([0.0, 2.0, -1.0, 1.0], (1, 1, 2, 2))
    y = t64([1.0, 0.0, 0.5, 0.0], (1, 1, 2, 2))
    p1, p2, p3 = sig(2.0), sig(-1.0), sig(1.0)
    expected = (
        -((1 - 0.5) ** 2) * math.log(0.5)  # y = 1, p = 0.5
        - p1**2 * math.log(1 - p1)  # y = 0
        - (0.5 * (1 - p2) ** 2 * math.log(p2) + 0.5**4 * p2**2 * math.log(1 - p2))  # y = 0.5: both terms
        - p3**2 * math.log(1 - p3)  # y = 0
    ) / 1  # one pixel with y == 1
    v = L.focal(x, y)
    assert v.shape == (1,)
    assert v.item() == pytest.approx(expected, rel=1e-12)


def test_focal_normalises_by_batch_positive_count():
    # sample 0: two positives at p = 0.5; sample 1: one positive and one negative
    x = t64([0.0, 0.0, 2.0, -1.0], (2, 1, 1, 2))
    y = t64([1.0, 1.0, 1.0, 0.0], (2, 1, 1, 2))
    s0 = 2 * 0.25 * math.log(2)
    s1 = focal_px(2.0, 1.0) + focal_px(-1.0, 0.0)
    n = 3  # positives in the whole batch, not 2 and 1 per sample
    v = L.focal(x, y)
    assert v.tolist() == pytest.approx([2 * s0 / n, 2 * s1 / n], rel=1e-12)
    assert v.mean().item() == pytest.approx((s0 + s1) / n, rel=1e-12)


def test_focal_soft_target_minimiser_is_positive_and_increasing():
    grid = torch.arange(-10, 10, 1e-3, dtype=torch.float64)
    best = []
    for y in (0.25, 0.5, 0.75):
        # one pixel per sample and no y == 1 pixel: N = 1, v_i = B·(pixel loss), same argmin
        v = L.focal(grid.view(-1, 1, 1, 1), torch.full((grid.numel(), 1, 1, 1), y, dtype=torch.float64))
        best.append(torch.sigmoid(grid[v.argmin()]).item())
    assert all(p > 0.05 for p in best), best
    assert best[1] == pytest.approx(0.69, abs=0.03)
    assert best[0] < best[1] < best[2]


# ---------------------------------------------------------------- soft IoU


def _iou_example():
    p = [0.5, 0.2, 0.1, 0.3]  # sample 0 holds one target pixel, sample 1 is an empty crop
    x = t64([logit(v) for v in p], (2, 1, 1, 2)).requires_grad_()
    t = t64([1.0, 0.0, 0.0, 0.0], (2, 1, 1, 2))
    return x, t


def test_soft_iou_is_one_iou_over_the_batch():
    x, t = _iou_example()
    inter = 0.5  # Σ p·t
    union = (0.5 + 0.2 + 0.1 + 0.3) + 1.0 - inter  # Σp + Σt − I = 1.6
    expected = 1 - (inter + 1) / (union + 1)
    v = L.soft_iou(x, t)
    # shares (U_i − I_i)·B/(U + 1): sample 0: 0.7 + 1 − 2·0.5 = 0.7; sample 1: 0.4
    assert v.tolist() == pytest.approx([2 * 0.7 / 2.6, 2 * 0.4 / 2.6], rel=1e-12)
    assert v.mean().item() == pytest.approx(expected, rel=1e-12)
    # same gradients as the batch formula
    p, tt = torch.sigmoid(x), t
    i_ = (p * tt).sum()
    ref = 1 - (i_ + 1) / (p.sum() + tt.sum() - i_ + 1)
    g_v = torch.autograd.grad(v.mean(), x)[0]
    g_ref = torch.autograd.grad(ref, x)[0]
    assert torch.allclose(g_v, g_ref, rtol=1e-12, atol=1e-15)


def _prior_batch():
    """Two 8×8 crops at logit −6: crop 0 holds one target pixel (a point label), crop 1 is empty."""
    x = torch.full((2, 1, 8, 8), -6.0, dtype=torch.float64)
    t = torch.zeros_like(x)
    t[0, 0, 3, 3] = 1
    return x, t


def test_soft_iou_background_prediction_is_not_a_minimum():
    x, t = _prior_batch()
    x.requires_grad_()
    g = torch.autograd.grad(L.soft_iou(x, t).mean(), x)[0]
    assert g[0, 0, 3, 3] < 0  # raising the target's logit lowers the loss
    # Direction "find the target at the price of one false pixel in the empty crop": downhill for
    # the batch IoU. Per crop it is uphill (the empty crop's loss rises faster than the target's
    # falls), so "predict nothing" is where a per-crop IoU leads.
    d = torch.zeros_like(x)
    d[0, 0, 3, 3] = 1
    d[1, 0, 5, 5] = 1
    assert (g * d).sum() < 0
    x0 = x.detach()
    assert L.soft_iou(x0 + 0.5 * d, t).mean() < L.soft_iou(x0, t).mean()


def test_soft_iou_empty_crop_costs_less_than_per_crop():
    x, t = _prior_batch()
    t[0, 0, 3:5, 3:5] = 1  # a 2×2 target in crop 0
    x.requires_grad_()
    v = L.soft_iou(x, t)
    sum_p = 64 * sig(-6.0)
    per_crop = 1 - 1 / (sum_p + 1)  # Σp/(Σp + 1): the old per-crop loss of the empty crop
    assert v[1].item() < per_crop
    # and a pixel of the empty crop is pushed down less than by the mean of per-crop losses,
    # whose gradient there is ½·σ'(x)/(Σp + 1)²
    g = torch.autograd.grad(v.mean(), x)[0][1, 0, 0, 0].item()
    assert 0 < g < 0.5 * sig(-6.0) * (1 - sig(-6.0)) / (sum_p + 1) ** 2


def test_softiou_bce_adds_pixel_mean_bce():
    x, t = _iou_example()
    bce = [
        (-math.log(0.5) - math.log(0.8)) / 2,  # sample 0: y = 1 at p = .5, y = 0 at p = .2
        (-math.log(0.9) - math.log(0.7)) / 2,
    ]
    v = L.softiou_bce(x, t)
    assert v.tolist() == pytest.approx([2 * 0.7 / 2.6 + bce[0], 2 * 0.4 / 2.6 + bce[1]], rel=1e-12)


# ---------------------------------------------------------------- weighting


def test_weights_scale_each_samples_share():
    w1 = torch.ones(2, dtype=torch.float64)
    w = t64([2.0, 0.0], (2,))
    # focal: (w·v).mean() = Σ w_i S_i / N with the batch N = 3
    x = t64([0.0, 0.0, 2.0, -1.0], (2, 1, 1, 2))
    y = t64([1.0, 1.0, 1.0, 0.0], (2, 1, 1, 2))
    v = L.focal(x, y)
    assert (w1 * v).mean().item() == pytest.approx(v.mean().item(), rel=1e-15)
    assert (w * v).mean().item() == pytest.approx(2 * (2 * 0.25 * math.log(2)) / 3, rel=1e-12)
    # soft IoU: Σ w_i (U_i − I_i)/(U + 1)
    x, t = _iou_example()
    v = L.soft_iou(x, t)
    assert (w1 * v).mean().item() == pytest.approx(1 - 1.5 / 2.6, rel=1e-12)
    assert (w * v).mean().item() == pytest.approx(2 * 0.7 / 2.6, rel=1e-12)


# ---------------------------------------------------------------- PAL edge OHEM


def sp(x: float) -> float:
    return math.log1p(math.exp(x))  # BCE of logit x against y = 0


def test_pal_edge_mines_over_the_batch():
    # no targets: no edges, loss = softplus(x). Sample 0 is hard, sample 1 easy.
    x = t64([1.0, 2.0, 3.0, 4.0, -4.0, -3.0, -2.0, -1.0], (2, 1, 1, 4))
    y = torch.zeros_like(x)
    v = L.pal_edge(x, y)
    # batch sorted ascending: sample 1's four, then sample 0's; rank int(0.5·8) = 4 -> softplus(1):
    # all of sample 0 is kept and none of sample 1 (per-sample mining would keep half of each)
    hard = sum(sp(a) for a in (1, 2, 3, 4))
    assert v.tolist() == pytest.approx([2 * hard / 4, 0.0], rel=1e-12)
    assert v.mean().item() == pytest.approx(hard / 4, rel=1e-12)


def test_pal_edge_weights_edges_and_keeps_ties():
    x = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    # target at pixel 0: edge = pixels 0 and 1 (boundary ± 1), loss [4, 4, 1, 1]·log 2;
    # rank 2 of the sorted [1, 1, 4, 4]·log 2 is 4·log 2: the two edge pixels are kept
    y = t64([1.0, 0.0, 0.0, 0.0], (1, 1, 1, 4))
    assert L.pal_edge(x, y).item() == pytest.approx(4 * math.log(2), rel=1e-12)
    # losses [log 2, log 2, log 2, softplus(1)]: the threshold log 2 ties with three pixels, and all
    # of them are kept (≥, as upstream), not just the top half
    x = t64([0.0, 0.0, 0.0, 1.0], (1, 1, 1, 4))
    expected = (3 * math.log(2) + sp(1.0)) / 4
    assert L.pal_edge(x, torch.zeros_like(x)).item() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- distillation


def test_distillation_hand_value():
    s = t64([0.0, 0.0], (1, 1, 1, 2))
    tch = t64([4.0, -4.0], (1, 1, 1, 2))
    y = t64([1.0, 0.0], (1, 1, 1, 2))
    q = sig(4.0 / 2)  # T = 2; the other pixel has 1 − q, the same distance from σ(0) = 0.5
    mse = 2**2 * 2 * (q - 0.5) ** 2 / 1  # N = one positive
    kl = q * math.log(q / 0.5) + (1 - q) * math.log((1 - q) / 0.5)
    assert L.distillation(s, tch, y, 2.0, "mse").item() == pytest.approx(mse, rel=1e-12)
    assert L.distillation(s, tch, y, 2.0, "bce").item() == pytest.approx(2**2 * 2 * kl, rel=1e-12)
    assert L.distillation(s, tch, y, 2.0, "mse", norm="pixels").item() == pytest.approx(mse / 2, rel=1e-12)
    # two samples share one batch normaliser: positives 1 + 2 = 3
    s2, t2 = s.repeat(2, 1, 1, 1), tch.repeat(2, 1, 1, 1)
    y2 = t64([1.0, 0.0, 1.0, 1.0], (2, 1, 1, 2))
    v = L.distillation(s2, t2, y2, 2.0, "mse")
    assert v.tolist() == pytest.approx([2 * mse / 3, 2 * mse / 3], rel=1e-12)


def _realistic():
    y = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    y[0, 0, 5, 5] = y[0, 0, 5, 6] = y[0, 0, 6, 5] = 1
    y[1, 0, 20, 20] = y[1, 0, 20, 21] = 1
    teacher = torch.where(y > 0, 4.0, -4.0).to(torch.float64)
    student = torch.full_like(y, -4.6)  # the focal-loss prior, p ≈ 0.01
    return student, teacher, y


@pytest.mark.parametrize("seg", ["focal", "softiou_bce"])
@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_distillation_gradient_comparable_to_segmentation(seg, kind):
    student, teacher, y = _realistic()

    def grad_norm(fn):
        s = student.clone().requires_grad_()
        return torch.autograd.grad(fn(s).mean(), s)[0].norm().item()

    g_seg = grad_norm(lambda s: L.segmentation_loss(seg)(s, y))
    g_kd = grad_norm(lambda s: L.distillation(s, teacher, y, 4.0, kind, norm=L.DISTILL_NORM[seg]))
    assert 0.1 <= g_kd / g_seg <= 10, g_kd / g_seg


@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_distillation_zero_at_teacher_and_teacher_detached(kind):
    _, teacher, y = _realistic()
    teacher = (teacher + torch.linspace(-1, 1, teacher.numel(), dtype=torch.float64).view_as(teacher)).requires_grad_()
    student = teacher.detach().clone().requires_grad_()
    v = L.distillation(student, teacher, y, 4.0, kind)
    assert torch.equal(v, torch.zeros_like(v))
    L.distillation(student - 1, teacher, y, 4.0, kind).sum().backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(L.SEGMENTATION_LOSSES))
def test_segmentation_losses_reject_mismatched_shapes(name):
    fn = L.segmentation_loss(name)
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4).unsqueeze(0))  # (1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        fn(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))


def test_distillation_rejects_bad_inputs():
    a = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        L.distillation(a, torch.zeros(2, 1, 4, 5), a)
    with pytest.raises(ValueError, match="target must be a tensor"):
        L.distillation(a, a, 4.0)  # the old call form distillation(s, t, temperature)
    with pytest.raises(ValueError, match="norm"):
        L.distillation(a, a, a, norm="batch")
    with pytest.raises(ValueError, match="kind"):
        L.distillation(a, a, a, kind="kl")
