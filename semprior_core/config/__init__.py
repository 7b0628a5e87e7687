"""The run's config tree: one typed dataclass per concern, validated on construction.

Saved in every run directory and checkpoint. Built from YAML plus ``key.sub=value``
overrides by :func:`load_config`; unknown keys and bad values are errors naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..labels.config import LabelConfig
from ..method.config import SempriorConfig
from .check import ConfigError, check_fields
from .tree import apply_overrides, from_dict, load_yaml, naming_file, to_dict

SYNTHETIC_ROOT = "@synthetic"  # the embedded default dataset, generated (seeded) on first use


@dataclass
class DatasetSpec:
    """One dataset folder (``images/``, ``masks/``, split files) and which split files to use."""

    root: str = SYNTHETIC_ROOT
    name: str = ""  # prefix of sample ids when datasets are combined; default: the folder name
    train_split: str = "splits/50_50/train.txt"
    test_split: str = "splits/50_50/test.txt"
    points: str = ""  # points JSON for this dataset; default: data.points


@dataclass
class DataConfig:
    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec()])
    val_fraction: float = 0.1  # carved from the training split, seeded; never the test split
    val_seed: int = 0
    points: str = "centroid"  # centroid | coarse | path to a points JSON file
    points_seed: int = 0
    crop: int = 256
    batch_size: int = 8
    # Probability that a training crop is centred on a label point (annotated points for point
    # supervision, mask components for full supervision), shifted by up to target_jitter·crop/2;
    # the rest are uniform. Uniform 128² crops of NUAA-SIRST miss every target 57 % of the time.
    target_prob: float = 0.8
    target_jitter: float = 0.75
    samples_per_epoch: int = 0  # crops drawn per epoch; 0 = one per active training image
    num_workers: int = 0
    flips: bool = True
    rot90: bool = True
    synthetic_seed: int = 0
    synthetic_train: int = 48
    synthetic_test: int = 24
    synthetic_size: int = 256  # side of the synthetic images (the generator mixes in other sizes only at 256)
    # further SyntheticConfig fields (e.g. clutter, dim_fraction), checked by the generator's config
    synthetic_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self, {
            "datasets": (bool(self.datasets), "must list at least one dataset"),
            "val_fraction": (0.0 < self.val_fraction < 0.9, "must be in (0, 0.9)"),
            "crop": (self.crop >= 16, "must be >= 16"),
            "batch_size": (self.batch_size >= 1, "must be >= 1"),
            "num_workers": (self.num_workers >= 0, "must be >= 0"),
            "target_prob": (0.0 <= self.target_prob <= 1.0, "must be in [0, 1]"),
            "target_jitter": (0.0 <= self.target_jitter <= 1.0, "must be in [0, 1] (a fraction of crop/2)"),
            "samples_per_epoch": (self.samples_per_epoch >= 0, "must be >= 0 (0 = one crop per image)"),
        })  # fmt: skip


@dataclass
class ModelConfig:
    backbone: str = "unet"
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the backbone factory
    output_prior: float = 0.01  # initial σ(logit) of the head; 0 keeps the backbone's own init

    def __post_init__(self) -> None:
        check_fields(self, {"output_prior": (0.0 <= self.output_prior < 1.0, "must be in [0, 1)")})


@dataclass
class VFMConfig:
    name: str = "none"  # none | dinov2_vits14 | random_vit | dinov2_vitb14 | ... (see semprior_core.vfm)
    weights: str | None = None  # local weights file for user checkpoints
    input_size: int = 448  # long side fed to the VFM; a multiple of its patch size
    layers: list[int] = field(default_factory=lambda: [3, 6, 9])  # 1-based blocks cached (the deepest also clusters)
    cache_dir: str | None = None  # default: the user cache directory
    seed: int = 0  # for random_vit

    def __post_init__(self) -> None:
        check_fields(self, {
            "input_size": (self.input_size > 0, "must be > 0"),
            "layers": (bool(self.layers), "must list at least one block"),
        })  # fmt: skip


@dataclass
class SCAMConfig:
    enabled: bool = True
    stages: list[int] = field(default_factory=lambda: [0, 1, 2])  # encoder stages modulated (0 = highest resolution)
    vfm_layers: list[int] = field(default_factory=lambda: [3, 6, 9])  # VFM block feeding each stage, same order
    hidden: int = 64
    mode: Literal["spatial", "global"] = "spatial"  # global = the seed code's per-channel FiLM
    gate: Literal["tanh", "sigmoid"] = "tanh"
    gate_l1: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, {
            "vfm_layers": (len(self.vfm_layers) == len(self.stages),
                           f"must name one VFM block per modulated stage (stages={self.stages})"),
        })  # fmt: skip


@dataclass
class TrainConfig:
    epochs: int = 20
    # Total optimizer steps, spread evenly over the epochs (rounded up to whole epochs); 0 = one crop per
    # image per epoch, or data.samples_per_epoch. Epochs stay the unit of label updates, validation and
    # checkpoints; the learning-rate schedule follows every step.
    steps: int = 0
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    weight_decay: float = 1e-4
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    warmup_epochs: int = 0
    step_milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of epochs
    loss: Literal["softiou_bce", "softiou", "focal", "bce", "pal_edge"] = "softiou_bce"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = False
    compile: bool = False
    eval_every: int = 1
    # which epoch best.pt holds. auto: the best on dense validation masks for full supervision, on the
    # point-only F1 otherwise; last: the final epoch, no selection (the validation score is still logged)
    select: Literal["auto", "val_dense", "val_points", "last"] = "auto"
    grad_clip: float = 0.0
    threads: int = 0  # torch CPU threads; 0 = leave torch's default

    def __post_init__(self) -> None:
        check_fields(self, {
            "epochs": (self.epochs >= 1, "must be >= 1"),
            "steps": (self.steps >= 0, "must be >= 0 (0 = set by the epochs)"),
            "lr": (self.lr > 0, "must be > 0"),
            "eval_every": (self.eval_every >= 1, "must be >= 1"),
        })  # fmt: skip


@dataclass
class MethodConfig:
    name: Literal["supervised", "semprior"] = "supervised"
    # full: dense masks; points: point labels evolved by labels.rule (fixed | lesps | pal)
    supervision: Literal["full", "points"] = "points"
    model: Literal["student", "teacher"] = "student"  # for supervised: train the plain backbone or the SCAM teacher

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class RunConfig:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    vfm: VFMConfig = field(default_factory=VFMConfig)
    scam: SCAMConfig = field(default_factory=SCAMConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    semprior: SempriorConfig = field(default_factory=SempriorConfig)

    def __post_init__(self) -> None:
        if self.train.steps and self.data.samples_per_epoch:  # two fields in two sections: named here
            raise ConfigError(
                f"train.steps ({self.train.steps}) and data.samples_per_epoch ({self.data.samples_per_epoch}) "
                "both set the epoch length: set one of them"
            )


def supervision_name(cfg: RunConfig) -> str:
    """Short name of what supervised a run: full, fixed (bare points), lesps or pal."""
    return "full" if cfg.method.supervision == "full" else cfg.labels.rule


def evolves_labels(cfg: RunConfig) -> bool:
    """Point labels that a rule updates during training (not dense masks, not fixed points)."""
    return cfg.method.supervision == "points" and cfg.labels.rule != "fixed"


def steps_per_epoch(cfg: RunConfig) -> int:
    """Optimizer steps per epoch that ``train.steps`` sets (rounded up); 0 = set by the data instead."""
    return -(-cfg.train.steps // cfg.train.epochs) if cfg.train.steps else 0


# -- resume ----------------------------------------------------------------------------------------
# The only fields a resume may change: how the run is executed, how often it is validated, how far it
# goes. Every other field, including any added later, is what the run *is* and must match, so a resume
# can never turn a run into another one under the same name.
RESUME_MAY_CHANGE = frozenset({
    "train.epochs",  # only where nothing depends on the epoch budget (budget_dependence)
    "train.steps",  # only where the steps per epoch stay the same
    "train.eval_every",  # more or fewer validations; the old last epoch keeps its own
    "train.select",  # only to last: best.pt then becomes each epoch, whatever the old rule chose
    "train.threads", "train.device", "train.amp", "train.channels_last", "train.compile",
    "data.num_workers", "vfm.cache_dir",
})  # fmt: skip


@dataclass(frozen=True)
class ConfigChange:
    key: str  # dotted path, e.g. labels.rule or data.datasets[0].root
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key} is {self.old!r} in the run but {self.new!r} now"


def config_changes(old: Any, new: Any, key: str = "") -> Iterator[ConfigChange]:
    """Every leaf field at which config tree ``new`` differs from ``old``, in config order."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        for f in dataclasses.fields(old):
            yield from config_changes(getattr(old, f.name), getattr(new, f.name), f"{key}.{f.name}" if key else f.name)
    elif _dataclass_list(old) and _dataclass_list(new) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from config_changes(a, b, f"{key}[{i}]")
    elif to_dict(old) != to_dict(new):
        yield ConfigChange(key, to_dict(old), to_dict(new))


def _dataclass_list(value: Any) -> bool:
    return isinstance(value, list) and all(dataclasses.is_dataclass(v) for v in value)


def budget_dependence(cfg: RunConfig) -> list[str]:
    """Settings that make the run's schedule a function of ``train.epochs``: changing the budget mid-run would
    rescale what the remaining epochs do, so the run would be neither the old run nor a new one that long."""
    why = []
    if cfg.train.schedule != "constant":  # cosine span and step milestones are fractions of the epochs
        why.append(f"train.schedule={cfg.train.schedule}")
    if evolves_labels(cfg):
        # label-update start, PAL phases and the skipped update at the last epoch are set by the budget
        why.append(f"labels.rule={cfg.labels.rule}")
    return why


def check_resume(old: RunConfig, new: RunConfig, epochs_done: int) -> list[ConfigChange]:
    """The changes resuming a run of config ``old``, ``epochs_done`` epochs in, with ``new`` makes.

    A :class:`ConfigError` names every field (with both values) that would change what the run is."""
    changes = list(config_changes(old, new))
    problems = [str(c) for c in changes if c.key not in RESUME_MAY_CHANGE]
    if new.train.epochs < epochs_done:
        problems.append(f"train.epochs={new.train.epochs} is fewer than the {epochs_done} epochs already trained")
    why = budget_dependence(old)
    if new.train.epochs != old.train.epochs and why:
        problems.append(
            f"train.epochs {old.train.epochs} -> {new.train.epochs} would rescale a schedule set by the epoch "
            f"budget ({', '.join(why)}) that the trained epochs followed"
        )
    if old.train.eval_every != new.train.eval_every and old.method.name == "semprior" and old.semprior.combine == "weighted":
        problems.append(
            f"train.eval_every {old.train.eval_every} -> {new.train.eval_every} changes when validation re-weights "
            "the networks of semprior.combine=weighted's label updates"
        )
    if old.train.select != new.train.select and new.train.select != "last":
        problems.append(
            f"train.select {old.train.select} -> {new.train.select}: best.pt of the trained epochs was kept by the "
            "old rule, so only a change to 'last' (the final epoch) is well defined"
        )
    if steps_per_epoch(old) != steps_per_epoch(new):
        problems.append(
            f"train.steps={new.train.steps} over {new.train.epochs} epochs changes the steps per epoch "
            f"({steps_per_epoch(old)} -> {steps_per_epoch(new)}; 0 = set by the data)"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    return changes


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (optional) + ``key.sub=value`` overrides -> validated :class:`RunConfig`."""
    data = load_yaml(path) if path else {}
    with naming_file(path):
        cfg = from_dict(RunConfig, data)
    return apply_overrides(cfg, list(overrides or []))


def config_dict(cfg: RunConfig) -> dict[str, Any]:
    return to_dict(cfg)


# Fields added after runs were saved, with the behaviour those runs had. A saved config (a checkpoint's or a
# run's config.yaml: always a full dump) that lacks one predates it, so it means the old behaviour, not the
# new default: a resumed or re-evaluated old run stays the run it was.
ADDED_FIELDS: dict[str, Any] = {"semprior.meta_val_crops": "uniform"}


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A saved config (full dump) -> :class:`RunConfig`; a field it predates takes its old value (ADDED_FIELDS)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for key, old in ADDED_FIELDS.items():
        section, name = key.split(".")
        if isinstance(data.get(section), dict):
            data[section].setdefault(name, old)
    return from_dict(RunConfig, data)
