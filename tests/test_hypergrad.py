"""Tests of the cluster weights and the one-step look-ahead hypergradient (semprior_core.method.hypergrad).

Hypergradients are checked against central finite differences of an independent implementation of
L_val(θ'(α)) in float64: ``order="second"`` must match to ~1e-6, ``order="first"`` only to O(η).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semprior_core.config import SCAMConfig
from semprior_core.method.config import SempriorConfig
from semprior_core.method.hypergrad import ClusterReweighter, ClusterWeights, meta_step
from semprior_core.models import create_backbone
from semprior_core.scam import Teacher

# --- cluster weights ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "sizes", "hi", "expected"),
    [
        ([0.0, math.log(4)], None, 5.0, [0.4, 1.6]),  # c·[1, 4] with mean 1
        ([0.0, math.log(4)], [3, 1], 5.0, [1 / 1.75, 4 / 1.75]),  # 0.75c + 0.25·4c = 1
        ([0.0, math.log(100)], None, 5.0, [0.2, 1.8]),  # 1/50.5 < 0.2 is clipped; 0.5·0.2 + 0.5·w = 1
        ([10.0, 0.0, 0.0], None, 2.0, [2.0, 0.5, 0.5]),  # first clipped at 2; (2 + 2c)/3 = 1
    ],
)
def test_weights_hand_computed(alpha, sizes, hi, expected):
    cw = ClusterWeights(len(alpha), sizes, weight_min=0.2, weight_max=hi)
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor(alpha))
    torch.testing.assert_close(cw.weights(), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_weights_positive_mean_one_clipped():
    sizes = torch.tensor([5, 1, 7, 2, 9, 3])
    cw = ClusterWeights(6, sizes, weight_min=0.3, weight_max=2.5)
    g = torch.Generator().manual_seed(0)
    for scale in (0.0, 0.5, 2.0, 8.0):
        with torch.no_grad():
            cw.alpha.copy_(scale * torch.randn(6, generator=g))
        w = cw.weights()
        assert bool((w >= 0.3 - 1e-6).all()) and bool((w <= 2.5 + 1e-6).all())
        assert float((w.detach() * sizes).sum() / sizes.sum()) == pytest.approx(1.0, abs=1e-5)
    # the largest scale must actually hit both bounds, or the clipping above was not exercised
    assert float(w.min()) == pytest.approx(0.3) and float(w.max()) == pytest.approx(2.5)


def test_zero_logits_give_unit_weights_and_per_sample_lookup():
    cw = ClusterWeights(3, [4, 1, 1])
    assert torch.equal(cw.weights(), torch.ones(3))
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor([0.0, 1.0, -1.0]))
    w = cw.weights()
    torch.testing.assert_close(cw.per_sample(torch.tensor([2, 0, 2, 1])), w[[2, 0, 2, 1]])


def test_state_dict_round_trip():
    cw = ClusterWeights(4, [1, 2, 3, 4])
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor([0.3, -0.7, 1.1, 0.0]))
    other = ClusterWeights(4, [1, 2, 3, 4])
    other.load_state_dict(cw.state_dict())
    assert torch.equal(other.weights(), cw.weights())


def test_invalid_construction():
    with pytest.raises(ValueError, match="weight_min"):
        ClusterWeights(3, weight_min=1.5)
    with pytest.raises(ValueError, match="sizes"):
        ClusterWeights(3, [1, 2])


# --- a toy regression problem ------------------------------------------------------------------------------


def _toy(seed: int = 0, batch: int = 12, n_val: int = 10):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, generator=g, dtype=torch.float64)
    ids = torch.arange(batch) % 3
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64) + 0.5 * ids.double()  # cluster bias
    xv = torch.randn(n_val, 4, generator=g, dtype=torch.float64)
    yv = xv @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()

    def train_fn(fwd):
        return (fwd(x).squeeze(-1) - y) ** 2, ids

    def val_fn(fwd):
        return ((fwd(xv).squeeze(-1) - yv) ** 2).mean()

    return model, train_fn, val_fn


def _lookahead_val(model, w, train_fn, val_fn, eta):
    """Reference L_val(θ'): a plain SGD step on a copy of the model with fixed weights w (no functional_call)."""
    clone = copy.deepcopy(model)
    losses, ids = train_fn(clone)
    grads = torch.autograd.grad((w[ids] * losses).mean(), list(clone.parameters()))
    with torch.no_grad():
        for p, g in zip(clone.parameters(), grads, strict=True):
            p -= eta * g
        return float(val_fn(clone))


def _finite_difference(model, cw, train_fn, val_fn, eta, eps=1e-6):
    base = cw.alpha.detach().clone()
    out = torch.zeros_like(base)
    for k in range(base.numel()):
        vals = []
        for sign in (1, -1):
            with torch.no_grad():
                cw.alpha.copy_(base)
                cw.alpha[k] += sign * eps
            vals.append(_lookahead_val(model, cw.weights().detach(), train_fn, val_fn, eta))
        out[k] = (vals[0] - vals[1]) / (2 * eps)
    with torch.no_grad():
        cw.alpha.copy_(base)
    return out


@pytest.mark.parametrize("alpha", [[0.2, -0.4, 0.3], [0.0, 0.5, 3.0]])  # the second clips cluster 2 at 2.0
def test_second_order_matches_finite_difference(alpha):
    model, train_fn, val_fn = _toy()
    cw = ClusterWeights(3, [4, 4, 3], weight_min=0.2, weight_max=2.0).double()
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor(alpha))
    eta = 0.3
    logs = meta_step(model, cw, train_fn, val_fn, inner_lr=eta, order="second")
    fd = _finite_difference(model, cw, train_fn, val_fn, eta)
    assert float(fd.abs().max()) > 1e-3  # a non-trivial hypergradient
    torch.testing.assert_close(cw.alpha.grad, fd, rtol=1e-5, atol=1e-8)
    if alpha[2] == 3.0:
        assert float(cw.alpha.grad[2]) == 0.0  # a clipped weight is locally constant
    reference = _lookahead_val(model, cw.weights().detach(), train_fn, val_fn, eta)
    assert logs["val_after"] == pytest.approx(reference)
    assert logs["hypergrad_norm"] == pytest.approx(float(fd.norm()), rel=1e-5)


def test_first_order_is_an_order_eta_approximation():
    """First order uses ∇L_val(θ) instead of ∇L_val(θ'): its relative error shrinks linearly with η."""
    model, train_fn, val_fn = _toy(seed=1)
    cw = ClusterWeights(3, weight_min=0.0, weight_max=math.inf).double()
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor([0.1, -0.2, 0.4]))
    errors = []
    for eta in (0.2, 0.002):
        meta_step(model, cw, train_fn, val_fn, inner_lr=eta, order="first")
        fd = _finite_difference(model, cw, train_fn, val_fn, eta)
        errors.append(float((cw.alpha.grad - fd).norm() / fd.norm()))
    assert errors[1] < 0.05
    assert errors[1] < errors[0] / 20  # ~100× smaller for a 100× smaller η
    # at a large η it can be far off (here even the signs flip), unlike the second order
    assert errors[0] > 0.5


# --- side effects: model gradients, parameters and BatchNorm statistics ---------------------------------


class TwoInput(nn.Module):
    """Image + list of prior maps (the teacher's signature), with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.prior = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, image: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        prior = sum(F.interpolate(self.prior(f), size=image.shape[-2:], mode="bilinear") for f in feats)
        return self.head(torch.relu(self.bn(self.conv(image)) + prior))


def _two_input_problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    image, val_image = torch.randn(6, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    feats = [torch.randn(6, 3, 2, 2, generator=g), torch.randn(6, 3, 4, 4, generator=g)]
    val_feats = [torch.randn(4, 3, 2, 2, generator=g), torch.randn(4, 3, 4, 4, generator=g)]
    mask, val_mask = (torch.rand(6, 1, 8, 8, generator=g) > 0.8), (torch.rand(4, 1, 8, 8, generator=g) > 0.8)
    image, val_image, mask, val_mask = (t.to(dtype) for t in (image, val_image, mask, val_mask))
    feats, val_feats = [f.to(dtype) for f in feats], [f.to(dtype) for f in val_feats]
    ids = torch.tensor([0, 1, 2, 0, 1, 1])

    def train_fn(fwd):
        logits = fwd(image, feats)
        return F.binary_cross_entropy_with_logits(logits, mask, reduction="none").flatten(1).mean(1), ids

    def val_fn(fwd):
        return F.binary_cross_entropy_with_logits(fwd(val_image, val_feats), val_mask)

    return train_fn, val_fn


@pytest.mark.parametrize("order", ["second", "first"])
def test_meta_step_leaves_model_untouched(order):
    torch.manual_seed(0)
    model = TwoInput().train()
    train_fn, val_fn = _two_input_problem(torch.float32)
    model.conv.weight.grad = torch.full_like(model.conv.weight, 7.0)
    before = copy.deepcopy(model.state_dict())
    cw = ClusterWeights(3)
    logs = meta_step(model, cw, train_fn, val_fn, inner_lr=0.1, order=order)
    assert torch.equal(model.conv.weight.grad, torch.full_like(model.conv.weight, 7.0))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "conv.weight")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # parameters and BN running statistics
    assert cw.alpha.grad is not None and float(cw.alpha.grad.abs().sum()) > 0
    assert set(logs) >= {"val_before", "hypergrad_norm", "weight_0", "weight_2"}
    # the check above can fail: an ordinary train-mode forward does move the running statistics
    model(*_inputs_of(train_fn))
    assert not torch.equal(model.bn.running_mean, before["bn.running_mean"])


def _inputs_of(train_fn):
    seen = []

    def spy(*args):
        seen.extend(args)
        return torch.zeros(6, 1, 8, 8)

    train_fn(spy)
    return seen


def test_two_input_model_with_batchnorm_matches_finite_difference():
    torch.manual_seed(1)
    model = TwoInput().double().train()
    train_fn, val_fn = _two_input_problem()
    cw = ClusterWeights(3, [1, 3, 2]).double()
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor([0.5, -0.3, 0.1]))
    eta = 0.5
    meta_step(model, cw, train_fn, val_fn, inner_lr=eta, order="second")
    fd = _finite_difference(model, cw, train_fn, val_fn, eta)
    torch.testing.assert_close(cw.alpha.grad, fd, rtol=1e-5, atol=1e-9)
    meta_step(model, cw, train_fn, val_fn, inner_lr=1e-3, order="first")
    fd_small = _finite_difference(model, cw, train_fn, val_fn, 1e-3)
    torch.testing.assert_close(cw.alpha.grad, fd_small, rtol=2e-2, atol=1e-9)


def test_project_teacher_hypergradient():
    """The real Teacher (U-Net + SCAM, image + list of VFM maps): exact hypergradient, buffers untouched."""
    torch.manual_seed(0)
    backbone = create_backbone("unet", widths=(4, 8))
    scam = SCAMConfig(stages=[0, 1], vfm_layers=[1, 2], hidden=4)
    teacher = Teacher(backbone, scam, prior_channels=[3, 3], feature_index=[0, 1]).double().train()
    with torch.no_grad():  # SCAM starts as the identity; give it a non-zero output so its path matters
        for m in teacher.scams:
            m.out_layer.weight.normal_(0, 0.3)
    train_fn, val_fn = _two_input_problem()
    cw = ClusterWeights(3, [1, 1, 1]).double()
    with torch.no_grad():
        cw.alpha.copy_(torch.tensor([0.2, 0.0, -0.2]))
    buffers = {k: b.clone() for k, b in teacher.named_buffers()}
    meta_step(teacher, cw, train_fn, val_fn, inner_lr=0.3, order="second")
    assert all(torch.equal(buffers[k], b) for k, b in teacher.named_buffers())
    fd = _finite_difference(teacher, cw, train_fn, val_fn, 0.3)
    torch.testing.assert_close(cw.alpha.grad, fd, rtol=1e-5, atol=1e-9)


def test_unused_parameters_and_frozen_parameters():
    """Parameters the losses never reach, or frozen ones, are held fixed instead of failing."""
    model, train_fn, val_fn = _toy()
    model[1].unused = nn.Linear(2, 2).double()  # registered, but never called by the forward
    model[0].bias.requires_grad_(False)
    cw = ClusterWeights(3).double()
    for order in ("second", "first"):
        logs = meta_step(model, cw, train_fn, val_fn, inner_lr=0.1, order=order)
        assert math.isfinite(logs["hypergrad_norm"]) and logs["hypergrad_norm"] > 0


# --- learning the weights ----------------------------------------------------------------------------------


def _corrupted_clusters(seed: int = 0):
    """Three clusters straddling the boundary x1 + x2 = 0; cluster 2's training labels are flipped."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [3.0, -3.0], [-3.0, 3.0]])

    def sample(n):
        ids = torch.randint(0, 3, (n,), generator=g)
        x = centres[ids] + 1.5 * torch.randn(n, 2, generator=g)
        return x, (x.sum(1) > 0).float(), ids

    x, y, ids = sample(600)
    y = torch.where(ids == 2, 1 - y, y)
    xv, yv, _ = sample(200)
    return x, y, ids, xv, yv, g


@pytest.mark.parametrize("order", ["second", "first"])
def test_weights_move_away_from_corrupted_cluster(order):
    x, y, ids, xv, yv, g = _corrupted_clusters()
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = SempriorConfig(meta_lr=0.05, inner_lr=0.1, meta_order=order)
    reweighter = ClusterReweighter.from_config(cfg, torch.bincount(ids, minlength=3).tolist())
    bce = nn.BCEWithLogitsLoss(reduction="none")
    for _ in range(50):
        b = torch.randint(0, len(x), (32,), generator=g)
        vb = torch.randint(0, len(xv), (32,), generator=g)
        reweighter.step(
            model,
            lambda fwd, b=b: (bce(fwd(x[b]).squeeze(-1), y[b]), ids[b]),
            lambda fwd, vb=vb: bce(fwd(xv[vb]).squeeze(-1), yv[vb]).mean(),
        )
        w = reweighter.weights.per_sample(ids[b]).detach()
        loss = (w * bce(model(x[b]).squeeze(-1), y[b])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w0, w1, w2 = reweighter.weights.weights().tolist()
    # seeds 0-3 all end near [0.5-1.5, 1.2-2.2, 0.2-0.27]: the flipped cluster falls towards weight_min
    assert w2 < 0.35 and w2 < min(w0, w1) - 0.2


def test_reweighter_state_round_trip():
    cfg = SempriorConfig()
    a = ClusterReweighter.from_config(cfg, [3, 2, 5])
    model, train_fn, val_fn = _toy()
    a.weights.double()
    a.step(model, train_fn, val_fn)
    b = ClusterReweighter.from_config(cfg, [3, 2, 5])
    b.weights.double()
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.weights.weights(), b.weights.weights())
    assert b.optimizer.state_dict()["state"][0]["step"] == 1


def test_invalid_order():
    model, train_fn, val_fn = _toy()
    with pytest.raises(ValueError, match="order"):
        meta_step(model, ClusterWeights(3).double(), train_fn, val_fn, inner_lr=0.1, order="third")


# --- config ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("meta_order", "third"), ("combine", "max"), ("weight_min", 1.5), ("weight_max", 0.5), ("meta_every", 0),
     ("inner_lr", 0.0), ("n_clusters", -1), ("temperature", 0.0)],
)  # fmt: skip
def test_config_rejects_bad_values_naming_the_field(field, value):
    from semprior_core.config.tree import from_dict

    with pytest.raises(ValueError, match=field):
        SempriorConfig(**{field: value})
    with pytest.raises(ValueError, match=field):  # and through the YAML/override loader
        from_dict(SempriorConfig, {field: value})


def test_config_defaults():
    cfg = SempriorConfig()
    assert (cfg.meta_order, cfg.meta_every, cfg.weight_min, cfg.weight_max) == ("second", 5, 0.2, 5.0)


def test_all_weights_clipped_gives_zero_hypergradient():
    model, train_fn, val_fn = _toy()
    cw = ClusterWeights(2, weight_min=1.0, weight_max=1.0).double()  # the only mean-1 point: w = 1
    ids = torch.arange(12) % 2
    for order in ("second", "first"):
        meta_step(model, cw, lambda f: (train_fn(f)[0], ids), val_fn, inner_lr=0.1, order=order)
        assert torch.equal(cw.alpha.grad, torch.zeros(2, dtype=torch.float64))


def test_per_sample_loss_shape_is_checked():
    model, train_fn, val_fn = _toy()

    def column_losses(fwd):
        losses, ids = train_fn(fwd)
        return losses[:, None], ids

    with pytest.raises(ValueError, match="per-sample"):
        meta_step(model, ClusterWeights(3).double(), column_losses, val_fn, inner_lr=0.1)


# --- look-ahead with the real optimiser's step sizes -------------------------------------------------------


def _two_by_two():
    """f(x) = θ·x with θ = (1, 0); train samples x=(1,0), y=0 (cluster 0) and x=(0,1), y=1 (cluster 1);
    validation x=(1,1), y=2. Squared losses, so every gradient below is countable by hand."""
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x, y, ids = torch.eye(2, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0, 1])
    xv, yv = torch.ones(1, 2, dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64)

    def train_fn(fwd):
        return (fwd(x).squeeze(-1) - y) ** 2, ids

    def val_fn(fwd):
        return ((fwd(xv).squeeze(-1) - yv) ** 2).mean()

    return model, train_fn, val_fn


@pytest.mark.parametrize(("order", "expected"), [("second", [0.32, -0.32]), ("first", [0.4, -0.4])])
def test_per_parameter_step_sizes_give_the_hand_computed_hypergradient(order, expected):
    """P = (0.1, 0.3); g_0 = (1, 0), g_1 = (0, −1) (per-sample gradients / B). Second order: θ' = θ − P⊙(g_0+g_1)
    = (0.9, 0.3), ∇L_val(θ') = 2(1.2 − 2)(1, 1) = (−1.6, −1.6), dL/dw = −⟨∇L_val, P⊙g_k⟩ = (0.16, −0.48). First
    order: ∇L_val(θ) = (−2, −2), dL/dw = (0.2, −0.6). At α = 0 with two equal clusters dw/dα = I − ½, so
    dL/dα = dL/dw − mean(dL/dw): (0.32, −0.32) and (0.4, −0.4)."""
    model, train_fn, val_fn = _two_by_two()
    cw = ClusterWeights(2, weight_min=0.0, weight_max=math.inf).double()
    sizes = {"weight": torch.tensor([[0.1, 0.3]], dtype=torch.float64)}
    meta_step(model, cw, train_fn, val_fn, inner_lr=sizes, order=order)
    torch.testing.assert_close(cw.alpha.grad, torch.tensor(expected, dtype=torch.float64))
    with pytest.raises(ValueError, match="no step size for parameter 'weight'"):
        meta_step(model, cw, train_fn, val_fn, inner_lr={}, order=order)


def test_optimizer_step_sizes_are_adams_next_step_per_element():
    """After one Adam step on gradient g: v = (1−β₂)g², v̂ = g², so the next step size is lr/(|g| + ε)."""
    from semprior_core.method.hypergrad import optimizer_step_sizes

    model = nn.Linear(2, 1, bias=False)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, eps=1e-8)
    assert optimizer_step_sizes(model, opt, 1e-3) == {"weight": 0.1}  # no state yet: the learning rate
    model.weight.grad = torch.tensor([[2.0, -0.5]])
    opt.step()
    sizes = optimizer_step_sizes(model, opt, 1e-3)["weight"]
    torch.testing.assert_close(sizes, torch.tensor([[0.1 / 2.0, 0.1 / 0.5]]))
    sgd = torch.optim.SGD(model.parameters(), lr=0.05)
    assert optimizer_step_sizes(model, sgd, 1e-3) == {"weight": 0.05}
    assert optimizer_step_sizes(model, None, 1e-3) == 1e-3


def test_distillation_waits_for_the_teacher_to_lead_then_ramps():
    from types import SimpleNamespace

    from semprior_core.method.semprior import SempriorMethod

    m = SimpleNamespace(sp=SempriorConfig(distill_start="teacher_ahead", distill_ramp=100), steps=0, distill_from=None,
                        val_quality={"teacher": 1.0, "student": 1.0})
    assert SempriorMethod.distill_scale(m) == 0.0
    m.steps = 200
    SempriorMethod.on_validation(m, {"val_teacher_point_f1": 0.4, "val_student_point_f1": 0.5})
    assert m.distill_from is None and SempriorMethod.distill_scale(m) == 0.0  # the teacher is behind
    SempriorMethod.on_validation(m, {"val_teacher_point_f1": 0.6, "val_student_point_f1": 0.5})
    assert m.distill_from == 200
    m.steps = 250
    assert SempriorMethod.distill_scale(m) == pytest.approx(0.5)
    SempriorMethod.on_validation(m, {"val_teacher_point_f1": 0.1, "val_student_point_f1": 0.5})
    m.steps = 400
    assert m.distill_from == 200 and SempriorMethod.distill_scale(m) == 1.0  # once started, it stays on
    always = SimpleNamespace(sp=SempriorConfig(), steps=0, distill_from=0)
    assert SempriorMethod.distill_scale(always) == 1.0
