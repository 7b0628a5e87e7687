"""Typed, validated configuration of the point-label evolution rules.

Constants default to the values read from the reference code (see ``/work/shared/METHOD_NOTES.md`` §2-3):

* LESPS -- Ying et al., "Mapping Degeneration Meets Label Evolution: Learning Infrared Small Target
  Detection with Single Point Supervision", CVPR 2023 (``XinyiYing/LESPS``, ``net.py`` ``update_gt``).
* PAL -- Yu et al., "From Easy to Hard: Progressive Active Learning Framework for Infrared Small Target
  Detection with Single Point Supervision" (``YuChuang1205/PAL``, ``utilts.py`` and ``train_model.py``).

Schedule boundaries are fractions of the epoch budget so that a 20-epoch smoke run keeps the shape of a
400-epoch reference run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RULES = ("fixed", "lesps", "pal")
INITS = ("point", "pal_easy")
STARTS = ("loss", "epoch")
CENTERS = ("region", "point")


def _check_candidate_fields(cfg: LespsConfig | PalConfig) -> None:
    """Validate the fields LESPS and PAL share (candidate extraction around each label region)."""
    name = type(cfg).__name__
    if cfg.window < 1 or cfg.window % 2 == 0:
        raise ValueError(f"{name}.window must be a positive odd integer, got {cfg.window}")
    if cfg.core < 1 or cfg.core % 2 == 0 or cfg.core > cfg.window:
        raise ValueError(
            f"{name}.core must be a positive odd integer <= window ({cfg.window}), got {cfg.core}"
        )
    if not 0.0 <= cfg.tb <= 1.0:
        raise ValueError(f"{name}.tb must be in [0, 1], got {cfg.tb}")
    if cfg.k < 0.0:
        raise ValueError(f"{name}.k must be >= 0, got {cfg.k}")
    if cfg.size_ref <= 0.0:
        raise ValueError(f"{name}.size_ref must be > 0, got {cfg.size_ref}")
    if not 0.0 <= cfg.min_peak <= 1.0:
        raise ValueError(f"{name}.min_peak must be in [0, 1], got {cfg.min_peak}")


@dataclass(frozen=True)
class LespsConfig:
    """LESPS label evolution (Ying et al., CVPR 2023).

    Per label region, candidates are pixels of the ``window``² neighbourhood whose probability exceeds
    ``tau = tb·p_max + k·(p_max − tb·p_max)·n / (size_ref·H·W)``; candidate components that do not touch the
    ``core``² square are dropped. ``size_ref`` = 0.0015 is the SPIE small-target area bound (0.15 % of the image).

    ``center``: ``"region"`` centres the squares on the int centroid of the current label region (LESPS);
    ``"point"`` centres them on each annotated point instead, so a region that grows lopsided cannot drag its
    window away from the target. ``blend`` is the weight of the prediction inside the candidate mask
    (LESPS: ½(L + p)). ``keep_points`` forces the annotated pixels to 1 after each update.

    ``min_peak``: a region whose window peak p_max is below it is left as it is (0 = LESPS's and PAL's rule).
    Early, low predictions make τ ≈ Tb·p_max admit a wide soft halo around each point. On NUAA-SIRST that
    halo is what lets single-pixel labels start to grow: with ``min_peak = 0.5`` a 2,400-step ACM run never
    detected its points and no label grew, while the upstream rule grew them to 0.44 mean IoU in 1,200 steps.
    On flat predictions (the network sees nothing yet) the halo can cover most of the window; a small
    ``min_peak`` guards against that.
    """

    window: int = 33
    core: int = 3
    tb: float = 0.5
    k: float = 0.5
    size_ref: float = 0.0015
    min_peak: float = 0.0
    center: str = "region"
    blend: float = 0.5
    keep_points: bool = True

    def __post_init__(self) -> None:
        _check_candidate_fields(self)
        if self.center not in CENTERS:
            raise ValueError(f"LespsConfig.center must be one of {CENTERS}, got {self.center!r}")
        if not 0.0 < self.blend <= 1.0:
            raise ValueError(f"LespsConfig.blend must be in (0, 1], got {self.blend}")


@dataclass(frozen=True)
class PalConfig:
    """PAL label evolution, easy-sample selection and hard-sample promotion (Yu et al.).

    Candidate extraction is LESPS's (``window``, ``core``, ``tb``, ``k``, ``size_ref``); the union of all
    candidates is applied once and the label outside it decays by ``degen`` per update. PAL stores soft labels
    but trains on them binarised at 0.5 (``binarize_labels``; applied by the data pipeline, not here).

    Easy-sample rule: an ``easy_window``-wide window around each point, high-pass, Canny(``canny``), closing
    3×3; the point is correct if it lies inside an external contour of area ≤ ``max_contour_area``. The image
    is easy if correct/points ≥ ``easy_ratio``.

    Schedule (fractions of the epoch budget; PAL: 400 epochs): pre-start up to ``pre_start`` (80/400), label
    enhancement with hard-sample promotion up to ``enhance_end`` (320/400), then refinement; labels are updated
    every ``update_every`` epochs. Promotion accepts an image if its lost-point ratio ≤
    ``lose_start + lose_span·progress`` and its false-alarm ratio ≤ ``alarm_ratio``.
    """

    window: int = 33
    core: int = 3
    tb: float = 0.5
    k: float = 0.5
    size_ref: float = 0.0015
    min_peak: float = 0.0  # as LespsConfig.min_peak
    degen: float = 0.97
    binarize_labels: bool = True
    easy_window: int = 20
    canny: tuple[int, int] = (20, 40)
    max_contour_area: float = 50.0
    easy_ratio: float = 0.8
    lose_start: float = 0.2
    lose_span: float = 0.8
    alarm_ratio: float = 5.0
    pre_start: float = 0.2
    enhance_end: float = 0.8
    update_every: int = 5

    def __post_init__(self) -> None:
        _check_candidate_fields(self)
        if not 0.0 < self.degen <= 1.0:
            raise ValueError(f"PalConfig.degen must be in (0, 1], got {self.degen}")
        if self.easy_window < 3:
            raise ValueError(f"PalConfig.easy_window must be >= 3 pixels, got {self.easy_window}")
        if len(self.canny) != 2 or not 0 <= self.canny[0] <= self.canny[1]:
            raise ValueError(f"PalConfig.canny must be (low, high) with 0 <= low <= high, got {self.canny}")
        if self.max_contour_area <= 0:
            raise ValueError(f"PalConfig.max_contour_area must be > 0, got {self.max_contour_area}")
        if not 0.0 <= self.easy_ratio <= 1.0:
            raise ValueError(f"PalConfig.easy_ratio must be in [0, 1], got {self.easy_ratio}")
        if not 0.0 <= self.lose_start <= 1.0 or self.lose_span < 0.0:
            raise ValueError(
                f"PalConfig needs 0 <= lose_start <= 1 and lose_span >= 0, got {self.lose_start}, {self.lose_span}"
            )
        if self.alarm_ratio < 0.0:
            raise ValueError(f"PalConfig.alarm_ratio must be >= 0, got {self.alarm_ratio}")
        if not 0.0 <= self.pre_start < self.enhance_end <= 1.0:
            raise ValueError(
                f"PalConfig needs 0 <= pre_start < enhance_end <= 1, got {self.pre_start}, {self.enhance_end}"
            )
        if self.update_every < 1:
            raise ValueError(f"PalConfig.update_every must be >= 1, got {self.update_every}")


@dataclass(frozen=True)
class GuardConfig:
    """Collapse guard applied to every label update (not part of LESPS or PAL).

    ``max_area`` bounds each connected region of the pseudo-mask (label > 0.5), in pixels. The default 400
    is ~1.2× the largest NUAA-SIRST target (330 px) and ~3.7× the largest NUDT-SIRST one (108 px), and
    above the SPIE small-target bound for a 512² image (0.15 % = 393 px): a region past it has almost
    certainly leaked into background. Raise it for data sets with larger targets (IRSTD-1K).
    ``freeze_on_violation`` keeps the previous label of an image whose update raised an event.
    """

    max_area: int = 400
    freeze_on_violation: bool = True

    def __post_init__(self) -> None:
        if self.max_area < 1:
            raise ValueError(f"GuardConfig.max_area must be >= 1 pixel, got {self.max_area}")


@dataclass(frozen=True)
class LabelConfig:
    """Which label rule runs, how labels start, and when updates happen.

    ``rule``: ``"fixed"`` (labels never change), ``"lesps"`` or ``"pal"``. ``init``: ``"point"`` (points drawn as
    (2·point_radius+1)² squares) or ``"pal_easy"`` (PAL's easy-sample contours).

    ``start``, ``start_loss``, ``start_epoch_frac`` and ``update_every`` drive the LESPS schedule; PAL's
    fixed schedule lives in ``pal``. LESPS (HEAD) starts at the first epoch whose mean training loss is
    below Tloss = 10, measured with its focal loss summed over pixels and divided by the number of positive
    pixels; that number means nothing for a per-pixel mean loss, so the default here is ``start="epoch"``
    with LESPS's older Tepoch = 40 of 400 epochs (0.1).
    """

    rule: str = "lesps"
    init: str = "point"
    point_radius: int = 0
    start: str = "epoch"
    start_loss: float = 10.0
    start_epoch_frac: float = 0.1
    update_every: int = 5
    lesps: LespsConfig = field(default_factory=LespsConfig)
    pal: PalConfig = field(default_factory=PalConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"LabelConfig.rule must be one of {RULES}, got {self.rule!r}")
        if self.init not in INITS:
            raise ValueError(f"LabelConfig.init must be one of {INITS}, got {self.init!r}")
        if self.start not in STARTS:
            raise ValueError(f"LabelConfig.start must be one of {STARTS}, got {self.start!r}")
        if self.point_radius < 0:
            raise ValueError(f"LabelConfig.point_radius must be >= 0, got {self.point_radius}")
        if self.start_loss <= 0.0:
            raise ValueError(f"LabelConfig.start_loss must be > 0, got {self.start_loss}")
        if not 0.0 <= self.start_epoch_frac < 1.0:
            raise ValueError(f"LabelConfig.start_epoch_frac must be in [0, 1), got {self.start_epoch_frac}")
        if self.update_every < 1:
            raise ValueError(f"LabelConfig.update_every must be >= 1, got {self.update_every}")
        for name, kind in (("lesps", LespsConfig), ("pal", PalConfig), ("guard", GuardConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(
                    f"LabelConfig.{name} must be a {kind.__name__}, got {type(getattr(self, name))}"
                )
