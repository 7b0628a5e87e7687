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
from typing import Literal, get_args

from semprior_core.config.check import check_fields

Rule = Literal["fixed", "lesps", "pal"]
RULES = get_args(Rule)


def _candidate_rules(cfg: LespsConfig | PalConfig) -> dict[str, tuple[bool, str]]:
    """Rules of the fields LESPS and PAL share (candidate extraction around each label region)."""
    return {
        "window": (cfg.window >= 1 and cfg.window % 2 == 1, "must be a positive odd integer"),
        "core": (cfg.core >= 1 and cfg.core % 2 == 1 and cfg.core <= cfg.window,
                 f"must be a positive odd integer <= window ({cfg.window})"),
        "tb": (0.0 <= cfg.tb <= 1.0, "must be in [0, 1]"),
        "k": (cfg.k >= 0.0, "must be >= 0"),
        "size_ref": (cfg.size_ref > 0.0, "must be > 0"),
        "min_peak": (0.0 <= cfg.min_peak <= 1.0, "must be in [0, 1]"),
    }  # fmt: skip


@dataclass
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
    center: Literal["region", "point"] = "region"
    blend: float = 0.5
    keep_points: bool = True

    def __post_init__(self) -> None:
        check_fields(self, {**_candidate_rules(self), "blend": (0.0 < self.blend <= 1.0, "must be in (0, 1]")})


@dataclass
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
        check_fields(self, {
            **_candidate_rules(self),
            "degen": (0.0 < self.degen <= 1.0, "must be in (0, 1]"),
            "easy_window": (self.easy_window >= 3, "must be >= 3 pixels"),
            "canny": (len(self.canny) == 2 and 0 <= self.canny[0] <= self.canny[1],
                      "must be (low, high) with 0 <= low <= high"),
            "max_contour_area": (self.max_contour_area > 0, "must be > 0"),
            "easy_ratio": (0.0 <= self.easy_ratio <= 1.0, "must be in [0, 1]"),
            "lose_start": (0.0 <= self.lose_start <= 1.0, "must be in [0, 1]"),
            "lose_span": (self.lose_span >= 0.0, "must be >= 0"),
            "alarm_ratio": (self.alarm_ratio >= 0.0, "must be >= 0"),
            "pre_start": (0.0 <= self.pre_start < 1.0, "must be in [0, 1)"),
            "enhance_end": (self.pre_start < self.enhance_end <= 1.0, f"must be in (pre_start={self.pre_start}, 1]"),
            "update_every": (self.update_every >= 1, "must be >= 1"),
        })  # fmt: skip


@dataclass
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
        check_fields(self, {"max_area": (self.max_area >= 1, "must be >= 1 pixel")})


@dataclass
class LabelConfig:
    """Which label rule runs, how labels start, and when updates happen.

    ``rule``: ``"fixed"`` (labels never change), ``"lesps"`` or ``"pal"``. ``init``: ``"point"`` (points drawn as
    (2·point_radius+1)² squares) or ``"pal_easy"`` (PAL's easy-sample contours).

    ``start``, ``start_loss``, ``start_epoch_frac`` and ``update_every`` drive the LESPS schedule; PAL's
    fixed schedule lives in ``pal``. LESPS (HEAD) starts at the first epoch whose mean training loss is
    below Tloss = 10, measured with its focal loss summed over pixels and divided by the number of positive
    pixels; that number means nothing for a per-pixel mean loss, so the default here is ``start="epoch"``
    with LESPS's older Tepoch = 40 of 400 epochs (0.1).

    ``predict_margin``: 0 (LESPS, PAL) predicts whole training images for a label update. A positive margin
    predicts only the annotated points' bounding box grown by that many pixels per side (probability 0
    elsewhere), which is all the evolution rules read: their candidate windows sit on label regions that
    grow from the points. It must cover a candidate window (``lesps.window`` and ``pal.window``); 64 gives a
    point the context of a 128² point-centred training crop. PAL's promotion of set-aside images counts
    false alarms over the whole image, so it always predicts whole images.
    """

    rule: Rule = "lesps"
    init: Literal["point", "pal_easy"] = "point"
    point_radius: int = 0
    start: Literal["epoch", "loss"] = "epoch"
    start_loss: float = 10.0
    start_epoch_frac: float = 0.1
    update_every: int = 5
    predict_margin: int = 0
    lesps: LespsConfig = field(default_factory=LespsConfig)
    pal: PalConfig = field(default_factory=PalConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        check_fields(self, {
            "point_radius": (self.point_radius >= 0, "must be >= 0"),
            "start_loss": (self.start_loss > 0.0, "must be > 0"),
            "start_epoch_frac": (0.0 <= self.start_epoch_frac < 1.0, "must be in [0, 1)"),
            "update_every": (self.update_every >= 1, "must be >= 1"),
            "predict_margin": (self.predict_margin == 0 or self.predict_margin >= self._largest_window(),
                               f"must be 0 (whole images) or >= the candidate window ({self._largest_window()} px)"),
            "lesps": (isinstance(self.lesps, LespsConfig), "must be a LespsConfig"),
            "pal": (isinstance(self.pal, PalConfig), "must be a PalConfig"),
            "guard": (isinstance(self.guard, GuardConfig), "must be a GuardConfig"),
        })  # fmt: skip

    def _largest_window(self) -> int:
        return max(getattr(self.lesps, "window", 0), getattr(self.pal, "window", 0))
