"""Per-cluster sample weights learned by the hypergradient of a one-step look-ahead.

Learning-to-reweight (Ren et al., "Learning to Reweight Examples for Robust Deep Learning", ICML 2018) with
persistent, learnable weights as in Meta-Weight-Net (Shu et al., NeurIPS 2019), one weight per image cluster.

The math. A training batch of B samples has per-sample losses ℓ_i(θ) and clusters c_i; the cluster weights are
w(α) ∈ R^K (:class:`ClusterWeights`). One SGD look-ahead step with the inner learning rate η,

    θ'(α) = θ − η ∇_θ (1/B) Σ_i w_{c_i}(α) ℓ_i(θ) = θ − η Σ_k w_k(α) g_k,   g_k = ∇_θ (1/B) Σ_{i: c_i = k} ℓ_i(θ),

is linear in w because θ is held fixed. The validation loss after it has the hypergradient

    dL_val(θ')/dw_k = −η ⟨∇_θ L_val(θ'), g_k⟩,      dL_val/dα = (∂w/∂α)ᵀ dL_val/dw.

``order="second"`` computes this exactly by autograd through θ'(α): the gradient ∇_θ of the weighted training
loss is built with ``create_graph=True``, so the backward pass of L_val(θ') into α runs through it (a
double backward that yields all K dot products at once). ``order="first"`` replaces ∇_θ L_val(θ') by
∇_θ L_val(θ) — exactly L2RW's value, which evaluates the look-ahead at ε = 0 — with an error of order
η·‖∇²L_val‖·‖Σ_k w_k g_k‖. It needs no second-order graph and no look-ahead forward: the dot products
⟨∇L_val(θ), ∇ℓ_i(θ)⟩ of every sample come from one forward-mode pass (a JVP of the per-sample losses along the
validation gradient).

Matching the real optimiser. With Adam(W) the teacher's actual step is not θ − η g but, per parameter element,
θ − lr_t · m̂/(√v̂ + ε). ``inner_lr`` may therefore be a per-parameter tensor P of step sizes (a diagonal
preconditioner): θ' = θ − P ⊙ Σ_k w_k g_k, and dL_val/dw_k = −⟨∇_θ L_val(θ'), P ⊙ g_k⟩.
:func:`optimizer_step_sizes` reads P = lr/(√v̂ + ε) off the optimiser's second-moment state (momentum is left
out: the look-ahead asks what *this* batch's gradient would do). In first order, P moves onto the validation
gradient (⟨a, P ⊙ b⟩ = ⟨P ⊙ a, b⟩ for diagonal P), so the forward-mode pass runs along P ⊙ ∇L_val.

Only α receives a gradient: the model's parameters, their ``.grad`` and its buffers are left as they were.
Every functional forward gets fresh copies of the model's buffers, so running statistics that BatchNorm
updates in train mode land in throw-away copies. The model runs in its current mode (in train mode BatchNorm
normalises with batch statistics, as in the ordinary training step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor, nn
from torch.func import functional_call

if TYPE_CHECKING:
    from .config import SempriorConfig

Forward = Callable[..., Any]  # runs the model functionally: forward(*inputs, **kw) -> model output
TrainLossFn = Callable[[Forward], tuple[Tensor, Tensor]]  # -> per-sample losses (B,), cluster ids (B,)
ValLossFn = Callable[[Forward], Tensor]  # -> scalar validation loss


class ClusterWeights(nn.Module):
    """K positive cluster weights with (size-weighted) mean 1, optionally clipped to [weight_min, weight_max].

    w_k = clip(exp(α_k + t), weight_min, weight_max), where the shift t(α) makes Σ_k π_k w_k = 1 exactly. π is
    the fraction of training images in each cluster (``sizes``) or uniform when ``sizes`` is None. Size
    weighting keeps the dataset-average sample weight at 1, so reweighting moves loss between clusters without
    changing the teacher's effective learning rate. α = 0 gives w = 1. t is found by bisection; the gradient
    flows exactly through the unclipped weights (clipped ones are constant).
    """

    def __init__(
        self,
        n_clusters: int,
        sizes: Sequence[int] | np.ndarray | Tensor | None = None,
        *,
        weight_min: float = 0.2,
        weight_max: float = 5.0,
    ) -> None:
        super().__init__()
        if n_clusters < 1:
            raise ValueError(f"ClusterWeights needs n_clusters >= 1, got {n_clusters}")
        if not 0 <= weight_min <= 1 <= weight_max:
            raise ValueError(
                f"ClusterWeights needs 0 <= weight_min <= 1 <= weight_max, got {weight_min}, {weight_max}"
            )
        prior = (
            torch.ones(n_clusters) if sizes is None else torch.as_tensor(sizes, dtype=torch.float32).flatten()
        )
        if prior.numel() != n_clusters or bool((prior < 0).any()) or float(prior.sum()) <= 0:
            raise ValueError(
                f"ClusterWeights.sizes must be {n_clusters} non-negative counts with a positive sum"
            )
        self.weight_min, self.weight_max = float(weight_min), float(weight_max)
        self.alpha = nn.Parameter(torch.zeros(n_clusters))
        self.register_buffer("prior", prior / prior.sum())

    def weights(self) -> Tensor:
        """(K,) weights; differentiable in α."""
        a, prior, lo, hi = self.alpha, self.prior.to(self.alpha.dtype), self.weight_min, self.weight_max
        shift = _mean_one_shift(a.detach().double().cpu().numpy(), prior.double().cpu().numpy(), lo, hi)
        with torch.no_grad():
            raw = torch.exp(a + shift)
            free = (raw > lo) & (raw < hi)
            clipped = raw.clamp(lo, hi)
        if not bool(free.any()):
            return clipped
        # Recompute the scale of the free weights in closed form, so the mean is exactly 1 and differentiable.
        e = torch.exp(a - a.detach().max())
        scale = (1 - (prior * torch.where(free, 0.0, clipped)).sum()) / (prior * e * free).sum()
        return torch.where(free, e * scale, clipped)

    def per_sample(self, cluster_ids: Tensor) -> Tensor:
        """(B,) weight of each sample's cluster."""
        w = self.weights()
        return w[cluster_ids.to(w.device)]

    def extra_repr(self) -> str:
        return f"n_clusters={self.alpha.numel()}, weight_min={self.weight_min}, weight_max={self.weight_max}"


def _mean_one_shift(alpha: np.ndarray, prior: np.ndarray, lo: float, hi: float, iters: int = 64) -> float:
    """t with Σ_k π_k clip(exp(α_k + t), lo, hi) = 1 (the sum is nondecreasing in t), by bisection.

    Bracket: at t = −max α every exp is ≤ 1 and at t = −min α every exp is ≥ 1; lo ≤ 1 ≤ hi keeps the clipped
    sum on the same side of 1. Runs on the CPU in float64 so that CUDA is not synchronised per iteration.
    """
    low, high = -alpha.max(), -alpha.min()
    for _ in range(iters):
        mid = 0.5 * (low + high)
        if (prior * np.clip(np.exp(alpha + mid), lo, hi)).sum() < 1:
            low = mid
        else:
            high = mid
    return float(0.5 * (low + high))


def _runner(model: nn.Module, params: dict[str, Tensor]) -> Forward:
    """A callable running ``model`` with ``params`` and fresh copies of its buffers (BN stats never persist)."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return lambda *args, **kwargs: functional_call(model, (params, buffers), args, kwargs)


def _checked(losses: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    # A (B, 1) loss would broadcast against the (B,) weights into a (B, B) matrix without an error.
    if losses.ndim != 1 or ids.shape != losses.shape:
        raise ValueError(
            f"train_loss_fn must return per-sample losses (B,) and cluster ids (B,), got "
            f"{tuple(losses.shape)} and {tuple(ids.shape)}"
        )
    return losses, ids


StepSizes = float | dict[str, Tensor | float]  # η, or per parameter name a tensor (or scalar) of step sizes


def optimizer_step_sizes(model: nn.Module, optimizer: torch.optim.Optimizer | None, fallback: float) -> StepSizes:
    """The per-element step sizes of ``optimizer``'s next step for ``model``'s parameters (module docstring).

    Adam/AdamW: lr/(√(v/(1−β₂ᵗ)) + ε) from each parameter's ``exp_avg_sq``; SGD and parameters with no state
    yet (before the first step): the group's lr. ``fallback`` when there is no optimiser.
    """
    if optimizer is None:
        return fallback
    sizes: dict[str, Tensor | float] = {}
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        group = group_of.get(id(p))
        if group is None or not p.requires_grad:
            continue
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" in state and "betas" in group:
            t = float(state["step"])
            v_hat = state["exp_avg_sq"] / (1 - group["betas"][1] ** t)
            sizes[name] = group["lr"] / (v_hat.sqrt() + group["eps"])
        else:
            sizes[name] = float(group["lr"])
    return sizes


def _size(inner_lr: StepSizes, name: str) -> Tensor | float:
    if isinstance(inner_lr, dict):
        if name not in inner_lr:
            raise ValueError(f"inner_lr has no step size for parameter {name!r}")
        return inner_lr[name]
    return inner_lr


def meta_step(
    model: nn.Module,
    weights: ClusterWeights,
    train_loss_fn: TrainLossFn,
    val_loss_fn: ValLossFn,
    *,
    inner_lr: StepSizes,
    order: Literal["second", "first"] = "second",
) -> dict[str, float]:
    """Set ``weights.alpha.grad`` to dL_val(θ'(α))/dα (replacing any previous value) and return logs.

    ``train_loss_fn(forward)`` must run the model through ``forward(*inputs)`` (once) and return the per-sample
    losses (B,) and cluster ids (B,) of a training batch; ``val_loss_fn(forward)`` returns the scalar loss of a
    validation batch. Loss terms the weights should not scale belong in neither. Parameters with
    ``requires_grad=False`` are held fixed. ``inner_lr``: the look-ahead's η, or per-parameter step sizes
    (:func:`optimizer_step_sizes`). See the module docstring for the math of ``order`` and of step sizes.

    Logs: ``val_before`` = L_val(θ); ``val_after`` = L_val(θ') (second order) or ``val_after_linear`` = its
    first-order Taylor estimate L_val(θ) + Σ_k w_k dL_val/dw_k (first order); ``hypergrad_norm``; ``weight_k``.
    """
    if order not in ("second", "first"):
        raise ValueError(f"meta_step order must be 'second' or 'first', got {order!r}")
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if order == "second":
        with torch.no_grad():
            val_before = val_loss_fn(_runner(model, params))
        w = weights.weights()
        losses, ids = _checked(*train_loss_fn(_runner(model, params)))
        inner = (w[ids.to(w.device)] * losses).sum() / losses.numel()
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True, allow_unused=True)
        ahead = {
            name: p if g is None else p - _size(inner_lr, name) * g
            for (name, p), g in zip(params.items(), grads, strict=True)
        }
        val_after = val_loss_fn(_runner(model, ahead))
        (hyper,) = torch.autograd.grad(val_after, weights.alpha, allow_unused=True)
        logs = {"val_before": float(val_before), "val_after": float(val_after.detach())}
    else:
        val = val_loss_fn(_runner(model, params))
        direction = torch.autograd.grad(val, list(params.values()), allow_unused=True)
        with torch.no_grad(), fwad.dual_level():
            dual = {
                name: p.detach() if v is None else fwad.make_dual(p.detach(), _size(inner_lr, name) * v)
                for (name, p), v in zip(params.items(), direction, strict=True)
            }
            losses, ids = _checked(*train_loss_fn(_runner(model, dual)))
            slopes = fwad.unpack_dual(losses).tangent  # ⟨P ⊙ ∇L_val(θ), ∇ℓ_i(θ)⟩ per sample
        w = weights.weights()
        per_cluster = torch.zeros_like(w)
        if slopes is not None:
            per_cluster = per_cluster.index_add(0, ids.to(w.device), slopes.to(w))
        dval_dw = -per_cluster / losses.numel()
        hyper = None  # all weights clipped: w is constant
        if w.requires_grad:
            (hyper,) = torch.autograd.grad(w, weights.alpha, grad_outputs=dval_dw, allow_unused=True)
        linear = val.detach() + (w.detach() * dval_dw).sum()
        logs = {"val_before": float(val.detach()), "val_after_linear": float(linear)}
    hyper = torch.zeros_like(weights.alpha) if hyper is None else hyper.detach()
    weights.alpha.grad = hyper
    logs["hypergrad_norm"] = float(hyper.norm())
    logs |= {f"weight_{k}": float(v) for k, v in enumerate(w.detach().cpu())}
    return logs


class ClusterReweighter:
    """Cluster weights and their own Adam optimiser; :meth:`step` is one meta step (the model is not stepped)."""

    def __init__(
        self,
        weights: ClusterWeights,
        *,
        lr: float,
        inner_lr: float,
        order: Literal["second", "first"] = "second",
        grad_clip: float = 1.0,
    ) -> None:
        self.weights, self.inner_lr, self.order, self.grad_clip = weights, inner_lr, order, grad_clip
        self.optimizer = torch.optim.Adam(weights.parameters(), lr=lr)

    @classmethod
    def from_config(cls, cfg: SempriorConfig, sizes: Sequence[int] | np.ndarray) -> ClusterReweighter:
        """Build from the method config; ``sizes`` are the training-image counts per cluster."""
        weights = ClusterWeights(len(sizes), sizes, weight_min=cfg.weight_min, weight_max=cfg.weight_max)
        return cls(
            weights, lr=cfg.meta_lr, inner_lr=cfg.inner_lr, order=cfg.meta_order, grad_clip=cfg.meta_grad_clip
        )

    def step(self, model: nn.Module, train_loss_fn: TrainLossFn, val_loss_fn: ValLossFn,
             step_sizes: StepSizes | None = None) -> dict[str, float]:
        """One meta step; ``step_sizes`` replace the fixed ``inner_lr`` (e.g. :func:`optimizer_step_sizes`)."""
        logs = meta_step(
            model, self.weights, train_loss_fn, val_loss_fn,
            inner_lr=self.inner_lr if step_sizes is None else step_sizes, order=self.order,
        )  # fmt: skip
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.weights.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights.load_state_dict(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
