"""When labels are updated: PAL's three phases and LESPS's loss- or epoch-triggered start.

Convention: ``epoch`` is 0-indexed and every function answers for the moment *before* epoch ``epoch`` is
trained. That is PAL's own convention (``train_model.py`` updates at the top of its epoch loop). LESPS
updates after training epoch t when (t + 1) % 5 == 0, which is before epoch e = t + 1 with e % 5 == 0, and
it tests its start condition on the mean loss of the epoch just finished (epoch e − 1).
"""

from __future__ import annotations

import math

from semprior_core.labels.config import LabelConfig, PalConfig


def _boundary(epochs: int, frac: float) -> int:
    """int(epochs·frac) as PAL computes it; the epsilon keeps e.g. 0.29·100 from flooring to 28."""
    return int(epochs * frac + 1e-9)


def _check_epoch(epoch: int, epochs: int) -> None:
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"need 0 <= epoch < epochs and epochs >= 1, got epoch={epoch}, epochs={epochs}")


def pal_phase(epoch: int, epochs: int, cfg: PalConfig) -> str:
    """PAL phase: ``"pre"`` up to int(pre_start·epochs) inclusive, ``"enhance"`` up to int(enhance_end·epochs)
    inclusive, then ``"refine"`` (400 epochs: 0-80, 81-320, 321-399)."""
    _check_epoch(epoch, epochs)
    if epoch <= _boundary(epochs, cfg.pre_start):
        return "pre"
    if epoch <= _boundary(epochs, cfg.enhance_end):
        return "enhance"
    return "refine"


def pal_lose_ratio(epoch: int, epochs: int, cfg: PalConfig) -> float:
    """Allowed ratio of missed points for promotion; grows linearly over the enhancement phase.

    PAL: 0.2 + (e − 0.2·N + 1)/(0.6·N)·0.8, i.e. 0.22 at e = 85 and 1.003 at e = 320 for N = 400. Not clipped.
    """
    _check_epoch(epoch, epochs)
    span = epochs * (cfg.enhance_end - cfg.pre_start)
    return cfg.lose_start + (epoch - epochs * cfg.pre_start + 1) / span * cfg.lose_span


def lesps_started(epoch: int, mean_loss: float, cfg: LabelConfig, *, epochs: int | None = None) -> bool:
    """Whether LESPS's start condition holds before epoch ``epoch``.

    ``start="loss"``: the previous epoch's mean training loss (``math.inf`` before epoch 0 ends) is below
    ``start_loss``. ``start="epoch"``: epoch > int(start_epoch_frac·epochs) (LESPS: idx + 1 > Tepoch);
    ``epochs`` is then required. The caller keeps the result sticky once it is True.
    """
    if cfg.start == "loss":
        return not math.isnan(mean_loss) and mean_loss < cfg.start_loss
    if epochs is None:
        raise ValueError("lesps_started needs epochs when LabelConfig.start == 'epoch'")
    _check_epoch(epoch, epochs)
    return epoch > _boundary(epochs, cfg.start_epoch_frac)


def should_update(epoch: int, epochs: int, cfg: LabelConfig, started: bool) -> bool:
    """Whether the labels are evolved before epoch ``epoch``.

    ``"fixed"``: never. ``"pal"``: outside the pre-start phase, every ``pal.update_every`` epochs (``started``
    is ignored: PAL's schedule is fixed). ``"lesps"``: once started, every ``update_every`` epochs. LESPS also
    runs one extra update at the epoch its start condition first holds; the caller does that when
    :func:`lesps_started` turns True.
    """
    _check_epoch(epoch, epochs)
    if cfg.rule == "fixed":
        return False
    if cfg.rule == "pal":
        return pal_phase(epoch, epochs, cfg.pal) != "pre" and epoch % cfg.pal.update_every == 0
    return started and epoch % cfg.update_every == 0
