from __future__ import annotations

import math

import pytest
import torch

from semprior_core.config import load_config
from semprior_core.models import create_backbone, list_backbones
from semprior_core.networks import build_student, build_teacher


@pytest.mark.parametrize("name", list_backbones())
def test_output_prior_sets_head_bias(name):
    torch.manual_seed(0)
    net = create_backbone(name).eval()
    x = torch.randn(1, 1, 64, 64)
    before = net(x)
    net.init_output_prior(0.01)
    after = net(x)
    # Only the final bias moved, so every logit shifts by the same amount: to logit(0.01) − old bias.
    shift = (after - before).flatten()
    assert torch.allclose(shift, shift[0].expand_as(shift), atol=1e-4)
    assert torch.sigmoid(after).mean() < 0.1


def test_teacher_and_student_share_the_factory():
    cfg = load_config(None, ["model.options={widths: [4, 8, 16]}", "vfm.name=contrast", "vfm.layers=[3]",
                             "scam.stages=[0, 1]", "scam.vfm_layers=[3, 3]"])
    s, t = build_student(cfg), build_teacher(cfg)
    assert type(t.backbone) is type(s)
    assert t.backbone.head.bias.item() == pytest.approx(math.log(0.01 / 0.99))
    assert len(t.scams) == 2
    off = build_teacher(load_config(None, ["model.options={widths: [4, 8, 16]}", "vfm.name=contrast", "scam.enabled=false"]))
    assert len(off.scams) == 0


# -- per-network seeding -------------------------------------------------------------------------
TINY = ["model.options={widths: [4, 8, 16, 32]}", "vfm.input_size=56", "vfm.layers=[1, 2]",
        "scam.stages=[1, 2]", "scam.vfm_layers=[1, 2]", "scam.hidden=8", "train.seed=3"]  # fmt: skip
SEMPRIOR = ["method.name=semprior", "vfm.name=random_vit"]
VARIANTS = {
    "supervised": [],
    "supervised-teacher": ["method.model=teacher", "vfm.name=contrast"],
    "semprior": SEMPRIOR,
    "contrast": [*SEMPRIOR, "vfm.name=contrast"],
    "scam-off": [*SEMPRIOR, "scam.enabled=false"],
    "reweight-off": [*SEMPRIOR, "semprior.reweight=false"],
    "distill-off": [*SEMPRIOR, "semprior.distill=false"],
    "other-stages": [*SEMPRIOR, "scam.stages=[0, 3]"],
    "global-scam": [*SEMPRIOR, "scam.mode=global"],
}


def _cfg(*overrides):
    return load_config(None, [*TINY, *overrides])


def _built_student(cfg):
    """The student as the run's method builds it: after whatever else the method builds, whatever the
    global RNG state (the order SupervisedMethod / SempriorMethod use)."""
    from semprior_core.networks import build_network

    torch.manual_seed(123)
    if cfg.method.name == "semprior" or cfg.method.model == "teacher":
        build_network(cfg, "teacher")
    return build_student(cfg)


def test_student_starts_identical_in_every_method_and_ablation():
    ref = _built_student(_cfg()).state_dict()
    for name, overrides in VARIANTS.items():
        state = _built_student(_cfg(*overrides)).state_dict()
        assert all(torch.equal(ref[k], state[k]) for k in ref), name
    other_seed = build_student(_cfg("train.seed=4")).state_dict()
    assert not all(torch.equal(ref[k], other_seed[k]) for k in ref)


def test_teacher_backbone_is_the_same_with_scam_on_or_off_and_differs_from_the_student():
    on, off = build_teacher(_cfg(*SEMPRIOR)), build_teacher(_cfg(*SEMPRIOR, "scam.enabled=false"))
    assert len(on.scams) == 2 and len(off.scams) == 0
    a, b = on.backbone.state_dict(), off.backbone.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    student = build_student(_cfg(*SEMPRIOR)).state_dict()
    assert not all(torch.equal(a[k], student[k]) for k in a)  # two networks, seeded apart


def test_a_scams_start_does_not_depend_on_the_other_stages():
    both = build_teacher(_cfg(*SEMPRIOR))  # stages [1, 2]
    alone = build_teacher(_cfg(*SEMPRIOR, "scam.stages=[2]", "scam.vfm_layers=[2]"))
    a, b = both.scams[1].state_dict(), alone.scams[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_building_networks_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    for overrides in VARIANTS.values():
        build_student(_cfg(*overrides))
        build_teacher(_cfg(*overrides))
    assert torch.equal(torch.get_rng_state(), before)


def test_derived_seed_is_stable():
    from semprior_core.networks import derived_seed

    # Fixed values: a network's start must not change between processes or Python versions.
    assert derived_seed(0, "student") == 1848879813
    assert derived_seed(3, "scam.stage1") == 4026669518
    assert len({derived_seed(0, "student"), derived_seed(0, "teacher"), derived_seed(1, "student")}) == 3


# -- semprior.share_backbone ---------------------------------------------------------------------
def _trainer(base, *overrides):
    from semprior_core.engine import Trainer
    from tests.fixtures_runs import _COMMON, SEMPRIOR_OVERRIDES, _dataset

    root = _dataset(base)
    cfg = load_config(None, [f"data.datasets=[{{root: '{root}'}}]", *_COMMON, *SEMPRIOR_OVERRIDES, *overrides])
    return Trainer(cfg, base / "run", progress=False)


def test_shared_backbone_is_the_students_and_one_step_moves_both(tmp_path):
    from semprior_core.runtime.inference import to_device

    trainer = _trainer(tmp_path, "semprior.share_backbone=true")
    m = trainer.method
    assert m.teacher.backbone is m.student
    scam = list(m.teacher.scams.parameters())
    assert len(m.parameters()) == len(list(m.student.parameters())) + len(scam)  # each tensor once
    before = {k: v.clone() for k, v in m.student.state_dict().items()}
    batch = to_device(next(iter(trainer._loader())), trainer.device)
    loss = m.logits("teacher", batch).mean() + m.logits("student", batch).mean()  # both paths reach the CNN
    trainer.optimizer.zero_grad()
    loss.backward()
    trainer.optimizer.step()
    student, teacher = m.student.state_dict(), m.teacher.state_dict()
    assert any(not torch.equal(before[k], student[k]) for k in before)
    assert all(teacher[f"backbone.{k}"].data_ptr() == v.data_ptr() for k, v in student.items())


def test_separate_backbones_share_no_tensor(tmp_path):
    m = _trainer(tmp_path).method
    assert not {id(p) for p in m.teacher.backbone.parameters()} & {id(p) for p in m.student.parameters()}


def test_a_shared_backbone_run_resumes_and_evaluates(tmp_path):
    import json

    from semprior_core.config import config_from_dict
    from semprior_core.engine import Trainer
    from semprior_core.evaluation.evaluate import load_run
    from semprior_core.store.checkpoint import load_checkpoint
    from tests.fixtures_runs import SEMPRIOR_OVERRIDES, build_run

    # distill off: the loss terms do not matter here. build_run also evaluates both networks on the test split.
    run = build_run(tmp_path, "shared", [*SEMPRIOR_OVERRIDES, "semprior.share_backbone=true", "semprior.distill=false"])
    evals = [json.loads(p.read_text()) for p in (run / "eval").glob("*.json")]
    assert {e["model"] for e in evals if e["split"] == "test"} == {"student", "teacher"}
    ckpt = load_checkpoint(run / "last.pt")
    student, teacher = ckpt["networks"]["student"], ckpt["networks"]["teacher"]
    assert all(torch.equal(teacher[f"backbone.{k}"], v) for k, v in student.items())
    # Evaluation rebuilds two networks: the teacher's own backbone holds the student's values.
    loaded = load_run(run / "best.pt")
    s, t = loaded.networks["student"].state_dict(), loaded.networks["teacher"].state_dict()
    assert all(torch.equal(t[f"backbone.{k}"], v) for k, v in s.items())
    # A resume restores the shared tensors (loaded from both entries) and the optimiser's state.
    resumed = Trainer(config_from_dict(ckpt["config"]), run, resume=True, progress=False).method
    assert resumed.teacher.backbone is resumed.student
    assert all(torch.equal(resumed.student.state_dict()[k], v) for k, v in student.items())


# -- semprior.combine ----------------------------------------------------------------------------
def _combiner(**kw):
    from semprior_core.method.config import SempriorConfig
    from semprior_core.method.semprior import SempriorMethod

    m = SempriorMethod.__new__(SempriorMethod)  # the label rule needs only the config and validation scores
    m.sp, m.val_quality = SempriorConfig(**kw), {"teacher": 0.6, "student": 0.2}
    return m


@pytest.mark.parametrize(
    "kw, models, expected",
    [
        ({}, ("teacher",), 0.8),  # the default: the seed code's rule
        ({"combine": "teacher"}, ("teacher",), 0.8),
        ({"combine": "mean"}, ("teacher", "student"), 0.4),
        ({"combine": "agreement"}, ("teacher", "student"), 0.0),
        ({"combine": "weighted"}, ("teacher", "student"), 0.6),  # 0.6/(0.6+0.2) · 0.8
        ({"collaborative": False, "combine": "mean"}, ("student",), 0.0),
        ({"collaborative": False}, ("student",), 0.0),
    ],
)
def test_label_combine_rules(kw, models, expected):
    import numpy as np

    m = _combiner(**kw)
    assert m.label_models() == models
    probs = {"teacher": [np.array([0.8])], "student": [np.array([0.0])]}
    (out,) = m.combine_label_probs({k: probs[k] for k in models})
    assert out.item() == pytest.approx(expected)


# -- Networks: how each network is called --------------------------------------------------------
def test_networks_call_each_network_with_its_inputs():
    from semprior_core.networks import Networks
    from tests.test_scam import _inputs, _randomise_out_layers, _teacher

    teacher, student = _teacher("unet").eval(), create_backbone("unet").eval()
    _randomise_out_layers(teacher)
    nets = Networks({"student": student, "teacher": teacher})
    image, feats = _inputs()
    batch = {"image": image, "feats": feats}
    assert list(nets) == ["student", "teacher"] and nets["teacher"] is teacher and len(nets) == 2
    assert nets.takes_features("teacher") and not nets.takes_features("student")
    with torch.no_grad():
        assert torch.equal(nets.logits("student", batch), student(image))
        assert torch.equal(nets.logits("teacher", batch), teacher(image, feats))
        assert torch.equal(nets.logits("teacher", batch, scam=False), teacher.backbone(image))
        assert not torch.equal(nets.logits("teacher", batch), teacher.backbone(image))


def test_networks_pad_to_the_largest_divisor():
    from semprior_core.networks import Networks

    small, large = create_backbone("unet", widths=[4, 8]), create_backbone("unet", widths=[4, 8, 16, 32])
    assert Networks({"a": small, "b": large}).size_divisor == large.size_divisor > small.size_divisor
