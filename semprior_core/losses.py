"""Segmentation and distillation losses as per-sample *shares* of the upstream batch loss.

Inputs are logits and targets of shape (B, 1, H, W); targets may be soft in [0, 1] (LESPS trains on
soft pseudo-masks). Every loss returns a vector v of shape (B,) with

    v.mean() == the upstream batch loss (same value, same gradients),

and v_i = B × (sample i's part of that batch loss). The upstream losses are batch quantities (one
normaliser or one IoU for the whole batch), not means of per-crop losses; the per-crop forms behave
differently (see ``soft_iou`` and ``focal``). Callers weight samples with mean-1 weights w as
``(w * v).mean()`` (cluster reweighting; ``method/hypergrad.py`` uses ``(w[ids] * v).sum() / B``),
which is the batch loss with sample i's part scaled by w_i; w = 1 gives the upstream loss exactly.
Normalisers (positive-pixel counts, the batch union, the OHEM kept count) are taken from the
unweighted batch, so the weights rescale parts and do not renormalise them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _check(*named: tuple[str, torch.Tensor]) -> None:
    """One clear error for mismatched inputs: broadcasting (B,1,H,W) against (B,H,W) would
    silently produce a (B,B,H,W) loss."""
    shape = None
    for name, x in named:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name} must have shape (B, 1, H, W), got {tuple(x.shape)}")
        if shape is None:
            shape = x.shape
        elif x.shape != shape:
            shape_txt = ", ".join(f"{n} {tuple(t.shape)}" for n, t in named)
            raise ValueError(f"loss inputs must have the same shape, got {shape_txt}")


def _batch_positives(target: torch.Tensor) -> torch.Tensor:
    """LESPS's normaliser: max(1, number of pixels with y == 1 in the whole batch).

    Soft pixels (0 < y < 1) do not count. It is a count, so no gradient flows through it."""
    return (target >= 1).sum().clamp(min=1).to(target.dtype)


def _shares(per_pixel: torch.Tensor, normaliser: torch.Tensor) -> torch.Tensor:
    """v_i = B · S_i / N with S_i sample i's pixel sum: v.mean() = Σ_i S_i / N, the batch loss."""
    return per_pixel.flatten(1).sum(1) * (per_pixel.shape[0] / normaliser)


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    # Equal-size crops: the mean of per-sample pixel means is the batch pixel mean.
    return x.flatten(1).mean(1)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits, pixel mean per sample (v.mean() = batch pixel mean)."""
    _check(("logits", logits), ("target", target))
    target = target.to(logits.dtype)
    return _per_sample_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


def soft_iou(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft IoU of σ(logits) and target over the WHOLE batch (BasicIRSTD / DNANet ``SoftIoULoss``).

    L = 1 − (I + s)/(U + s) = (U − I)/(U + s), I = Σ p·t and U = Σ p + Σ t − I summed over every
    pixel of the batch, s = ``smooth``. Returned shares v_i = B·(U_i − I_i)/(U + s), where U_i, I_i
    are sample i's sums and the denominator is the batch union (differentiated), so v.mean() is L
    with L's gradients. Weighted: (w·v).mean() = Σ_i w_i (U_i − I_i)/(U + s).

    Why not one IoU per crop: an empty crop's per-crop loss is Σp/(Σp + 1), which is only small
    once every logit is below about −12, and one confident false pixel there costs about as much as
    a whole missed target elsewhere. With many empty crops "predict nothing" becomes a deep minimum
    (the NUDT collapse). In the batch form an empty crop only adds its Σp to the shared union.
    """
    _check(("logits", logits), ("target", target))
    p = torch.sigmoid(logits).flatten(1)
    t = target.to(logits.dtype).flatten(1)
    inter = (p * t).sum(1)
    union = p.sum(1) + t.sum(1) - inter
    # U_i − I_i = Σp_i + Σt_i − 2 I_i ≥ 0: each sample's share is non-negative.
    return (union - inter) * (p.shape[0] / (union.sum() + smooth))


def softiou_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch soft-IoU loss plus pixel-mean BCE (shares of each, added)."""
    return soft_iou(logits, target) + bce(logits, target)


def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LESPS's focal loss (Ying et al., CVPR 2023: ``utils.py::focal_loss`` and the ``net.py`` loss).

    Per pixel −[y·(1−p)²·log p + (1−y)⁴·p²·log(1−p)] on EVERY pixel: a soft target weights the
    positive term by y, so the loss at 0 < y < 1 is lowest at some p > 0 (≈ 0.69 at y = 0.5).
    Counting only y = 1 as positive would make p = 0 the minimiser for every soft pixel and erase
    the evolving soft labels. The batch sum is divided by N = max(1, #pixels with y = 1 in the
    whole batch), as upstream.

    Returns shares v_i = B·S_i/N (S_i: sample i's pixel sum), so v.mean() = Σ_i S_i / N, LESPS's
    loss; weighted, (w·v).mean() = Σ_i w_i S_i / N. Computed with logsigmoid for stability.
    """
    _check(("logits", logits), ("target", target))
    y = target.to(logits.dtype)
    logp = F.logsigmoid(logits)
    log1mp = F.logsigmoid(-logits)
    p, q = logp.exp(), log1mp.exp()  # q = 1 − p without cancellation
    per_pixel = -(y * q**2 * logp + (1 - y) ** 4 * p**2 * log1mp)
    return _shares(per_pixel, _batch_positives(y))


def edge_map(target: torch.Tensor) -> torch.Tensor:
    """Pixels within distance 1 of the boundary of the binarised target (inside or outside)."""
    b = (target > 0.5).to(target.dtype)
    dil = F.max_pool2d(b, 3, stride=1, padding=1)
    ero = -F.max_pool2d(-b, 3, stride=1, padding=1)
    return (dil - ero).clamp(0, 1)


def pal_edge(logits: torch.Tensor, target: torch.Tensor, edge_weight: float = 4.0, keep: float = 0.5) -> torch.Tensor:
    """PAL's edge-weighted BCE with online hard-example mining over the BATCH (Yu et al. 2025,
    ``loss/Edge_loss.py::edgeSCE_loss``).

    Per-pixel BCE-with-logits, ×``edge_weight`` on ``edge_map`` pixels. The threshold is the loss at
    rank int((1 − keep)·n) of the batch's n pixels sorted ascending (upstream: index int(0.5·n));
    pixels with loss ≥ threshold are kept (ties included) and averaged. Mining over the batch means
    an easy crop may keep no pixels at all; mining per crop would instead force half of every crop
    into the loss. Shares v_i = B·(kept loss of sample i)/(number kept in the batch), so v.mean()
    is the upstream value and (w·v).mean() weights each sample's kept pixels by w_i.
    """
    _check(("logits", logits), ("target", target))
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}")
    target = target.to(logits.dtype)
    w = 1 + (edge_weight - 1) * edge_map(target)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w
    flat = loss.detach().flatten()
    idx = min(flat.numel() - 1, int((1 - keep) * flat.numel()))
    threshold = flat.sort().values[idx]  # a selection, not differentiated (as upstream)
    kept = (loss >= threshold).to(loss.dtype)
    return _shares(loss * kept, kept.sum().clamp(min=1))


SEGMENTATION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": bce,
    "softiou": soft_iou,  # DNANet / BasicIRSTD's loss alone
    "softiou_bce": softiou_bce,
    "focal": focal,
    "pal_edge": pal_edge,
}


def segmentation_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    try:
        return SEGMENTATION_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(SEGMENTATION_LOSSES)}") from None


# The distillation normaliser that matches each segmentation loss's gradient scale: LESPS's
# positive count for focal, the pixel count for the pixel-mean losses. With the positive count next
# to softiou_bce the distillation gradient is ~200x (2x32x32 crops) to ~1e5x (16x256x256, two point
# labels per crop) the segmentation gradient at the prior; with the pixel count it is 0.5-10x.
DISTILL_NORM: dict[str, str] = {
    "focal": "positives", "bce": "pixels", "softiou": "pixels", "softiou_bce": "pixels", "pal_edge": "pixels",
}


def distillation(
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 4.0,
    kind: str = "mse",
    norm: str = "positives",
) -> torch.Tensor:
    """Teacher → student distillation on temperature-softened sigmoids (teacher detached).

    Per pixel, with T = ``temperature``, s = σ(student/T) and q = σ(teacher/T):
    ``mse``: T²·(s − q)², the paper's code form; ``bce``: T²·[BCE(s; q) − H(q)], the binary
    KL(q ‖ s) (Hinton et al. 2015). BCE and KL differ by the teacher's entropy, a constant, so the
    gradients are the cross-entropy's, and the loss is exactly 0 when student == teacher. T² keeps
    the gradient from shrinking as 1/T².

    Pixels are summed and divided by a batch normaliser N; shares v_i = B·S_i/N, so
    (w·v).mean() = Σ_i w_i S_i / N. ``norm="positives"``: N = max(1, #pixels with target == 1 in
    the batch), the focal normaliser; ``norm="pixels"``: N = number of pixels in the batch (pixel
    mean, the scale of bce / softiou_bce / pal_edge). Use ``DISTILL_NORM[seg_loss_name]``.

    Why: the old pixel mean without T² made the distillation gradient ~1e-4 of the focal gradient
    where the teacher fires, so distillation changed nothing. Normalised like the segmentation loss
    it is used with, its gradient is of the same order as the segmentation gradient.
    """
    _check(("student", student), ("teacher", teacher), ("target", target))
    temp = float(temperature)
    if not temp > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z = student / temp
    zt = teacher.detach().to(student.dtype) / temp
    q = torch.sigmoid(zt)
    if kind == "mse":
        per_pixel = (torch.sigmoid(z) - q) ** 2
    elif kind == "bce":
        # Both terms through the same function, so student == teacher gives exactly 0.
        per_pixel = F.binary_cross_entropy_with_logits(z, q, reduction="none") - F.binary_cross_entropy_with_logits(
            zt, q, reduction="none"
        )
    else:
        raise ValueError(f"unknown distillation kind {kind!r}; use 'mse' or 'bce'")
    if norm == "positives":
        n = _batch_positives(target.to(student.dtype))
    elif norm == "pixels":
        n = torch.tensor(float(student.numel()), dtype=student.dtype, device=student.device)
    else:
        raise ValueError(f"unknown distillation norm {norm!r}; use 'positives' or 'pixels'")
    return _shares(temp**2 * per_pixel, n)
