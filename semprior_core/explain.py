"""Attributions for segmentation networks: explain the logits around one target with Captum.

A segmentation network returns a logit map, while attribution methods explain one scalar per input.
:class:`WindowScore` bridges the two: the sum of the logits inside a small window around a point (or
inside one predicted component), for the student or the SCAM teacher. For the teacher the explained
input is either the image or the frozen VFM features entering SCAM (``wrt="vfm"``), which shows *where
the semantic prior* drove the decision.

Methods (Captum, Kokhlikyan et al., "Captum: A unified and generic model interpretability library for
PyTorch", 2020):

* ``integrated_gradients``: Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.
  The baseline is zero, i.e. the mean training intensity for images (inputs are normalised) and
  "no prior" for VFM features.
* ``saliency``: |∂score/∂input| (Simonyan et al., "Deep Inside Convolutional Networks", ICLR-W 2014).
* ``smoothgrad``: saliency averaged over noisy copies of the input (Smilkov et al., "SmoothGrad:
  removing noise by adding noise", 2017), through Captum's NoiseTunnel.
* ``gradcam``: Grad-CAM at the output of one encoder stage (after SCAM for the teacher), upsampled to
  the image (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
  Localization", ICCV 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from .models.base import SegBackbone
from .scam import Teacher

METHODS = ("integrated_gradients", "saliency", "smoothgrad", "gradcam")
Wrt = Literal["image", "vfm"]


@dataclass(frozen=True)
class Target:
    """What to explain: the logits at ``point`` (y, x) within ``radius`` pixels (a square window), or, when
    ``region`` is given (bool H×W, e.g. from :func:`component_region`), the logits inside that region."""

    point: tuple[int, int]
    radius: int = 2
    region: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.point) != 2 or min(self.point) < 0:
            raise ValueError(f"Target.point must be a (y, x) pixel with non-negative coordinates, got {self.point}")
        if self.radius < 0:
            raise ValueError(f"Target.radius must be >= 0, got {self.radius}")
        if self.region is not None and (np.ndim(self.region) != 2 or not np.any(self.region)):
            raise ValueError("Target.region must be a non-empty 2-D mask")

    def window(self, shape: tuple[int, int]) -> np.ndarray:
        """Bool mask of the explained pixels in an image of ``shape`` (regions are zero-padded to it)."""
        h, w = shape
        y, x = self.point
        if not (y < h and x < w):
            raise ValueError(f"Target.point {self.point} lies outside an image of shape {shape}")
        out = np.zeros((h, w), dtype=bool)
        if self.region is not None:
            rh, rw = min(h, self.region.shape[0]), min(w, self.region.shape[1])
            out[:rh, :rw] = np.asarray(self.region, dtype=bool)[:rh, :rw]
            return out
        r = self.radius
        out[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
        return out


def component_region(prob: np.ndarray, point: tuple[int, int], threshold: float = 0.5, search: int = 3) -> np.ndarray | None:
    """The 8-connected component of ``prob > threshold`` containing ``point`` or nearest to it within
    ``search`` pixels; None when no component is that close (explain a window then)."""
    fg = np.asarray(prob) > threshold
    labels, n = ndimage.label(fg, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return None
    y, x = point
    y0, x0 = max(0, y - search), max(0, x - search)
    patch = labels[y0 : y + search + 1, x0 : x + search + 1]
    ys, xs = np.nonzero(patch)
    if len(ys) == 0:
        return None
    k = int(np.argmin((ys + y0 - y) ** 2 + (xs + x0 - x) ** 2))
    return labels == patch[ys[k], xs[k]]


def positive_mass_fraction(attribution: np.ndarray, region: np.ndarray) -> float:
    """Share of the positive attribution mass that lies inside ``region`` (0 when there is none)."""
    pos = np.clip(np.asarray(attribution, dtype=np.float64), 0, None)
    total = pos.sum()
    return float(pos[np.asarray(region, dtype=bool)].sum() / total) if total > 0 else 0.0


class _Tap(nn.Module):
    """Identity that returns a new autograd node (a view), so a hook on it sees this use of the tensor only."""

    def forward(self, x: Tensor) -> Tensor:
        return x.view_as(x)


class WindowScore(nn.Module):
    """One scalar per image: Σ logits inside ``window`` of a student (a :class:`SegBackbone`) or a
    :class:`Teacher`.

    ``wrt="image"``: ``forward(image)``, with the teacher's VFM features ``feats`` held fixed;
    ``wrt="vfm"``: ``forward(*feats)``, with ``image`` held fixed. Fixed inputs of batch size 1 are
    expanded to the batch Captum builds (interpolation steps, noise samples). ``taps`` (one per encoder
    stage) pass on the features handed to the decoder, after SCAM, for layer methods such as Grad-CAM:
    their gradient is the decoder path's only, as the teacher's modulated features reach nothing else.
    The teacher path mirrors :meth:`Teacher.forward` so that the taps can sit after the modulation.
    """

    def __init__(
        self,
        network: nn.Module,
        window: Tensor,
        *,
        wrt: Wrt = "image",
        image: Tensor | None = None,
        feats: Sequence[Tensor] | None = None,
        scam: bool = True,
    ) -> None:
        super().__init__()
        if wrt not in ("image", "vfm"):
            raise ValueError(f"wrt must be 'image' or 'vfm', got {wrt!r}")
        self.teacher = network if isinstance(network, Teacher) else None
        self.backbone: SegBackbone = network.backbone if self.teacher is not None else network
        self.modulate = self.teacher is not None and scam and len(self.teacher.scams) > 0
        if wrt == "vfm" and not self.modulate:
            raise ValueError("attribution w.r.t. VFM features needs a teacher with SCAM modules (and scam=True)")
        if self.modulate and wrt == "image" and feats is None:
            raise ValueError("the teacher's SCAM needs the VFM features: pass feats (or scam=False)")
        if wrt == "vfm" and image is None:
            raise ValueError("wrt='vfm' holds the image fixed: pass image")
        self.wrt, self.image, self.feats = wrt, image, list(feats) if feats is not None else None
        self.register_buffer("window", window.float(), persistent=False)
        self.taps = nn.ModuleList(_Tap() for _ in self.backbone.feature_info)

    @staticmethod
    def _expand(t: Tensor, batch: int) -> Tensor:
        return t.expand(batch, *t.shape[1:]) if t.shape[0] == 1 and batch != 1 else t

    def forward(self, *inputs: Tensor) -> Tensor:
        if self.wrt == "image":
            image = inputs[0]
            feats = [self._expand(f, image.shape[0]) for f in self.feats] if self.feats is not None else None
        else:
            feats = list(inputs)
            image = self._expand(self.image, feats[0].shape[0])
        enc = list(self.backbone.encode(image))
        if self.modulate:
            t = self.teacher
            for stage, index, module in zip(t.stages, t.feature_index, t.scams, strict=True):
                enc[stage] = module(enc[stage], feats[index])
        enc = [tap(e) for tap, e in zip(self.taps, enc, strict=True)]
        logits = self.backbone.decode(enc, (image.shape[-2], image.shape[-1]))
        return (logits[:, 0] * self.window.to(logits.dtype)).sum(dim=(-2, -1))


@dataclass(frozen=True)
class AttributionOptions:
    """Settings of the attribution methods (validated)."""

    n_steps: int = 24  # integrated gradients: Riemann steps along the path from the baseline
    internal_batch_size: int = 8  # integrated gradients: steps evaluated per forward pass
    nt_samples: int = 8  # smoothgrad: noisy copies
    stdevs: float = 0.2  # smoothgrad: noise σ in units of the (normalised) input
    stage: int = -1  # gradcam: encoder stage whose output is explained (-1 = deepest)
    seed: int = 0  # smoothgrad noise, drawn without touching the global RNG

    def __post_init__(self) -> None:
        if self.n_steps < 2 or self.internal_batch_size < 1 or self.nt_samples < 1:
            raise ValueError("AttributionOptions: n_steps >= 2, internal_batch_size >= 1 and nt_samples >= 1 are required")
        if not self.stdevs > 0:
            raise ValueError(f"AttributionOptions.stdevs must be > 0, got {self.stdevs}")


@dataclass
class Attribution:
    """Result of :func:`attribute`, as arrays at the (padded) image size."""

    method: str
    wrt: str
    map: np.ndarray  # (H, W): attribution summed over channels (and over VFM layers for wrt="vfm")
    window: np.ndarray  # (H, W) bool: the pixels whose logits were summed
    score: float  # the explained scalar: Σ logits inside the window
    layers: dict[int, np.ndarray] = field(default_factory=dict)  # wrt="vfm": VFM feature index -> (H, W)

    def mass_inside(self, region: np.ndarray | None = None) -> float:
        """Share of positive attribution inside ``region`` (default: the explained window)."""
        return positive_mass_fraction(self.map, self.window if region is None else region)


def attribute(
    network: nn.Module,
    image: Tensor,
    target: Target,
    method: str = "integrated_gradients",
    *,
    feats: Sequence[Tensor] | None = None,
    wrt: Wrt = "image",
    scam: bool = True,
    options: AttributionOptions | None = None,
) -> Attribution:
    """Attribute Σ logits in ``target``'s window of ``network`` on ``image`` (1, 1, H, W), normalised and
    padded as the network expects) with ``method``; ``feats`` are the teacher's VFM maps (1, C, h, w).

    The network runs in eval mode (restored afterwards); computation follows ``image``'s device.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"attribute expects one image (1, C, H, W), got {tuple(image.shape)}")
    if method == "gradcam" and wrt != "image":
        raise ValueError("gradcam explains a layer of the network, not its inputs: use wrt='image'")
    opts = options or AttributionOptions()
    size = (image.shape[-2], image.shape[-1])
    window = target.window(size)
    win_t = torch.from_numpy(window).to(image.device)
    feats = [f.to(image.device, image.dtype) for f in feats] if feats is not None else None
    score_fn = WindowScore(network, win_t, wrt=wrt, image=image if wrt == "vfm" else None, feats=feats, scam=scam)
    inputs: tuple[Tensor, ...] = (image,) if wrt == "image" else tuple(feats)
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in inputs)

    was_training = network.training
    network.eval()
    try:
        with torch.enable_grad():
            score = float(score_fn(*inputs).detach().sum())
            if method == "integrated_gradients":
                attrs = IntegratedGradients(score_fn).attribute(
                    inputs, baselines=tuple(torch.zeros_like(t) for t in inputs), n_steps=opts.n_steps,
                    internal_batch_size=opts.internal_batch_size,
                )
            elif method == "saliency":
                attrs = Saliency(score_fn).attribute(inputs, abs=True)
            elif method == "smoothgrad":
                with torch.random.fork_rng(devices=[image.device] if image.device.type == "cuda" else []):
                    torch.manual_seed(opts.seed)
                    attrs = NoiseTunnel(Saliency(score_fn)).attribute(
                        inputs, nt_type="smoothgrad", nt_samples=opts.nt_samples, stdevs=opts.stdevs,
                        nt_samples_batch_size=opts.nt_samples,
                    )
            else:
                n = len(score_fn.taps)
                if not -n <= opts.stage < n:
                    raise ValueError(f"gradcam stage {opts.stage} out of range: the backbone has {n} encoder stages")
                layer = score_fn.taps[opts.stage]
                cam = LayerGradCam(score_fn, layer).attribute(inputs, relu_attributions=True)
                attrs = (LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear"),)
    finally:
        network.train(was_training)
    attrs = attrs if isinstance(attrs, tuple) else (attrs,)
    if wrt == "image":
        return Attribution(method, wrt, _to_map(attrs[0], size), window, score)
    used = sorted(set(score_fn.teacher.feature_index))
    layers = {i: _to_map(attrs[i], size) for i in used}
    return Attribution(method, wrt, np.sum(list(layers.values()), axis=0), window, score, layers)


def _to_map(attr: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(1, C, h, w) attribution -> (H, W) channel sum, resampled to ``size`` when coarser (VFM grid)."""
    m = attr.detach().float().sum(dim=1, keepdim=True)
    if tuple(m.shape[-2:]) != tuple(size):
        # Spread each feature cell's attribution over the pixels it covers, conserving the total.
        scale = (m.shape[-2] * m.shape[-1]) / (size[0] * size[1])
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False) * scale
    return m[0, 0].cpu().numpy()
