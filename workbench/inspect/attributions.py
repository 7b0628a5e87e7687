"""Attributions of one target in one image (Captum through :mod:`semprior_core.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semprior_core.explain import (
    METHODS,
    AttributionOptions,
    Target,
    attribute,
    component_region,
    positive_mass_fraction,
)

from .handle import RunHandle, open_run


def default_target(run: str | Path | RunHandle, image: int | str, split: str = "test") -> tuple[int, int]:
    """The image's first point label, else its centre."""
    h = open_run(run)
    index = h.index(split, image)
    pts = h.points(split, index)
    if len(pts):
        return int(pts[0][0]), int(pts[0][1])
    hh, ww = h.bank(split).shape(index)
    return hh // 2, ww // 2


def attribution_inputs(run: str | Path | RunHandle, model: str | None, method: str) -> list[str]:
    """What ``model`` can be explained with respect to by ``method``: the image always; the VFM features
    entering SCAM for a SCAM teacher, except with Grad-CAM (it explains an encoder layer, not an input)."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    vfm = model == "teacher" and method != "gradcam" and open_run(run).has_scam()
    return ["image", "vfm"] if vfm else ["image"]


def attributions(
    run: str | Path | RunHandle,
    image: int | str,
    target: tuple[int, int] | None = None,
    method: str = "integrated_gradients",
    model: str | None = None,
    *,
    split: str = "test",
    wrt: str = "image",
    radius: int = 2,
    component: bool = False,
    options: AttributionOptions | None = None,
) -> dict[str, Any]:
    """Attribution map of Σ logits of ``model`` (default: the run's selection model) around ``target``
    (y, x; default: the first point label) in one image of ``split``.

    ``component=True`` explains the predicted component at the target (when there is one) rather than the
    ``radius`` window. ``wrt="vfm"`` attributes the teacher's output to the VFM features entering SCAM.
    Returns ``key``, ``image``, ``target``, ``window`` (bool), ``map`` (H, W), ``layers`` {VFM block: map},
    ``score``, ``mass_inside`` (share of positive attribution inside the window) and the settings.
    """
    h = open_run(run)
    nets = h.networks()
    model = model or (nets[0] if nets else "student")
    if model not in nets:
        raise ValueError(f"{h.name}: no network {model!r}; it holds {', '.join(nets) or 'none yet'}")
    if wrt not in attribution_inputs(h, model, method):
        raise ValueError(f"{method} cannot explain the {model} w.r.t. {wrt!r}; it can w.r.t. "
                         f"{' or '.join(attribution_inputs(h, model, method))}")
    index = h.index(split, image)
    shape = h.bank(split).shape(index)
    point = tuple(int(v) for v in target) if target is not None else default_target(h, index, split)
    region = component_region(h.predict(model, split, index), point) if component else None
    batch = h.batch(split, index)
    networks = h.loaded().networks
    feats = batch.get("feats") if networks.takes_features(model) else None
    res = attribute(networks[model], batch["image"], Target(point, radius, region), method,
                    feats=feats, wrt=wrt, options=options)
    crop = (slice(0, shape[0]), slice(0, shape[1]))
    layers = {h.cfg.vfm.layers[i]: m[crop] for i, m in res.layers.items()}
    window = res.window[crop]
    return {
        "key": h.keys(split)[index], "image": h.bank(split).image(index), "target": point, "window": window,
        "map": res.map[crop], "layers": layers, "score": res.score,
        "mass_inside": positive_mass_fraction(res.map[crop], window),
        "method": method, "model": model, "wrt": wrt, "split": split,
    }
