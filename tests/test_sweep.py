from __future__ import annotations

import pytest

from semprior_core.config import load_config
from semprior_core.config.tree import ConfigError, apply_overrides
from workbench import sweep
from workbench.reproduce import load_protocol, plan, select


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("scam=off", ["scam.enabled=false"]),
        ("reweight=off", ["semprior.reweight=false"]),
        ("distill=on", ["semprior.distill=true"]),
        ("collaborative=off", ["semprior.collaborative=false"]),
        ("vfm=random_vit", ["vfm.name=random_vit"]),
        ("train.lr=0.01", ["train.lr=0.01"]),
    ],
)
def test_ablation_overrides(spec, expected):
    assert sweep.ablation_overrides(spec) == expected


@pytest.mark.parametrize("spec", ["scam", "scam=maybe", "colour=blue"])
def test_bad_ablation(spec):
    with pytest.raises(ValueError):
        sweep.ablation_overrides(spec)


def test_vfm_none_is_refused_as_the_same_run_as_scam_off():
    with pytest.raises(ValueError, match="same network and run as 'scam=off'"):
        sweep.ablation_overrides("vfm=none")


def test_plan_grid(tmp_path):
    base = load_config(None, ["method.name=semprior"])
    jobs = sweep.plan(base, tmp_path, [0, 1, 2], ["vfm=random_vit", "scam=off"])
    assert len(jobs) == 9
    assert {j.variant for j in jobs} == {"full", "vfm-random_vit", "scam-off"}
    assert jobs[-1].run_dir == tmp_path / "scam-off" / "seed2" and "train.seed=2" in jobs[-1].overrides


def test_protocols_plan_every_run(tmp_path):
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "configs" / "base_cpu.yaml", root / "configs" / "base_cpu.yaml")
    data = root.parent / "shared" / "data" / "NUAA-SIRST"
    data.mkdir(parents=True)
    smoke = plan(load_protocol("smoke"), tmp_path / "smoke", root)
    assert len(smoke) == 5 + 2 and {b.model.backbone for _, b in smoke} == {"acm"}  # the CPU protocol's student
    (root / "configs" / "protocols").mkdir()
    (root / "configs" / "protocols" / "cpu-tuned.yaml").write_text(
        "lesps: {candidate: a, overrides: [labels.update_every=1]}\npal: {candidate: b, overrides: []}\n"
        "semprior: {candidate: c, overrides: [semprior.distill_weight=0.1]}\n")
    pairs = plan(load_protocol("cpu"), tmp_path / "out", root)
    # NUDT is absent here: 5 methods × 3 seeds on NUAA only (the ablations are protocol cpu-ablations)
    assert len(pairs) == 15
    assert all("NUAA-SIRST" in j.run_dir.parts[-4] or j.run_dir.parts[-4] == "nuaa" for j, _ in pairs)
    seeds = [j.seed for j, _ in pairs]
    assert seeds == sorted(seeds)  # seed-major, so an interrupted protocol covers every method first
    # the costliest runs first within a seed: semprior, then the methods that also evolve labels on whole images
    assert [j.run_dir.parts[-3] for j, _ in pairs[:5]] == ["semprior", "lesps", "pal", "full", "fixed"]
    assert {j.run_dir.parts[-3] for j, _ in pairs[:5]} == {"full", "fixed", "lesps", "pal", "semprior"}
    by_method = {j.run_dir.parts[-3]: b for j, b in pairs}
    assert by_method["lesps"].labels.update_every == 1 and by_method["semprior"].semprior.distill_weight == 0.1
    assert all(b.train.steps == 1500 and b.data.crop == 128 and b.data.batch_size == 8 for b in by_method.values())
    ablations = plan(load_protocol("cpu-ablations"), tmp_path / "out", root)
    assert {j.variant for j, _ in ablations} == {"full", "vfm-random_vit", "vfm-contrast", "scam-off", "reweight-off",
                                                 "distill-off", "collaborative-off"}
    assert all(b.semprior.distill_weight == 0.1 for _, b in ablations)  # the same tuned winner as `cpu`
    # v3 trains the U-Net student; cpu-acm (protocol v2, where the tuning ran) differs from it in the student only
    acm = plan(load_protocol("cpu-acm"), tmp_path / "acm", root)
    assert {b.model.backbone for _, b in pairs} == {b.model.backbone for _, b in ablations} == {"unet"}
    assert {b.model.backbone for _, b in acm} == {"acm"} and len(acm) == len(pairs)
    for (_, u), (_, a) in zip(pairs, acm):
        assert (u.train.steps, u.data.crop, u.data.batch_size, u.train.loss, u.labels.rule) == \
            (a.train.steps, a.data.crop, a.data.batch_size, a.train.loss, a.labels.rule)
    assert {b.model.backbone for _, b in plan(load_protocol("cpu-tune"), tmp_path / "tune", root)} == {"acm"}
    # v4's tuning round: the U-Net, label updates around the points, 8 candidates per method, its own report
    v4_tune = load_protocol("cpu-v4-tune")
    assert v4_tune.tuning_doc == "docs/tuning-v4.md" and load_protocol("cpu-tune").tuning_doc == "docs/tuning.md"
    tune_runs = plan(v4_tune, tmp_path / "v4-tune", root)
    assert len(tune_runs) == 24 and {b.model.backbone for _, b in tune_runs} == {"unet"}
    assert {b.labels.predict_margin for _, b in tune_runs} == {40} and not any(j.test for j, _ in tune_runs)
    assert {b.semprior.meta_val_crops for _, b in tune_runs} == {"train"}
    assert {b.semprior.meta_val_crops for _, b in plan(load_protocol("cpu"), tmp_path / "v3", root)} == {"uniform"}
    pal_rule = next(apply_overrides(b, list(j.overrides)) for j, b in tune_runs
                    if j.run_dir.parts[-3:-1] == ("semprior", "pal-rule"))
    assert (pal_rule.method.name, pal_rule.labels.rule, pal_rule.labels.init, pal_rule.train.loss,
            pal_rule.semprior.combine) == ("semprior", "pal", "pal_easy", "pal_edge", "weighted")
    with pytest.raises(ConfigError, match="cpu-v4-tune"):  # v4 refuses to run before its tuning round
        plan(load_protocol("cpu-v4"), tmp_path / "v4", root)
    (root / "configs" / "protocols" / "cpu-v4-tuned.yaml").write_text(
        "lesps: {candidate: a, overrides: []}\npal: {candidate: b, overrides: []}\n"
        "semprior: {candidate: c, overrides: [labels.start_epoch_frac=0.1]}\n")
    v4 = {j.run_dir.parts[-3]: apply_overrides(b, list(j.overrides)) for j, b in plan(load_protocol("cpu-v4"),
                                                                                       tmp_path / "v4", root)}
    # v4 keeps the final checkpoint of every point-supervised run (methods+); full supervision still selects
    assert {m: c.train.select for m, c in v4.items()} == {"full": "auto", "fixed": "last", "lesps": "last",
                                                         "pal": "last", "semprior": "last"}
    assert v4["semprior"].labels.start_epoch_frac == 0.1 and v4["semprior"].semprior.meta_every == 8
    assert {apply_overrides(b, list(j.overrides)).train.select for j, b in tune_runs} == {"last"}  # inherited
    # the ablations at the defaults share their un-ablated semprior runs with cpu-defaults: the same configs
    shared = {j.run_dir.parts[-4:]: b for j, b in plan(load_protocol("cpu-defaults"), tmp_path / "d", root)}
    unablated = [(j, b) for j, b in plan(load_protocol("cpu-ablations-defaults"), tmp_path / "d", root)
                 if j.variant == "full"]
    assert len(unablated) == 3 and all(b == shared[j.run_dir.parts[-4:]] for j, b in unablated)


def test_overrides_plus_appends_to_the_parents_overrides(tmp_path):
    assert load_protocol("cpu-acm").overrides == [*load_protocol("cpu").overrides, "model.backbone=acm",
                                                  "model.options={}", "scam.stages=[0,1,2]"]
    (tmp_path / "alone.yaml").write_text("base: b.yaml\nseeds: [0]\ndatasets: {}\nmethods: {}\noverrides+: [a=1]\n")
    with pytest.raises(ConfigError, match="extends none"):
        load_protocol(str(tmp_path / "alone.yaml"))
    from workbench.reproduce import PROTOCOL_DIR

    (tmp_path / "both.yaml").write_text(f"extends: {PROTOCOL_DIR / 'cpu.yaml'}\noverrides: [a=1]\noverrides+: [b=2]\n")
    with pytest.raises(ConfigError, match="not both"):
        load_protocol(str(tmp_path / "both.yaml"))


def test_methods_plus_appends_to_the_named_methods_overrides(tmp_path):
    from workbench.reproduce import PROTOCOL_DIR

    cpu = load_protocol("cpu")
    (tmp_path / "child.yaml").write_text(f"extends: {PROTOCOL_DIR / 'cpu.yaml'}\nmethods+: {{pal: [x=1]}}\n")
    child = load_protocol(str(tmp_path / "child.yaml"))
    assert child.methods["pal"] == [*cpu.methods["pal"], "x=1"]
    assert all(child.methods[m] == o for m, o in cpu.methods.items() if m != "pal")
    (tmp_path / "pick.yaml").write_text(f"extends: {tmp_path / 'child.yaml'}\nmethods: [pal]\n")
    assert load_protocol(str(tmp_path / "pick.yaml")).methods == {"pal": child.methods["pal"]}  # a child picks
    for name, text, match in [
        ("alone", "base: b.yaml\nseeds: [0]\ndatasets: {}\nmethods: {}\nmethods+: {a: [x=1]}\n", "extends none"),
        ("unknown", f"extends: {PROTOCOL_DIR / 'cpu.yaml'}\nmethods+: {{palx: [x=1]}}\n", "methods\\+ 'palx' is not in"),
        ("both", f"extends: {PROTOCOL_DIR / 'cpu.yaml'}\nmethods: {{a: []}}\nmethods+: {{pal: [x=1]}}\n", "not both"),
        ("shape", f"extends: {PROTOCOL_DIR / 'cpu.yaml'}\nmethods+: [pal]\n", "maps method names to lists"),
    ]:
        (tmp_path / f"{name}.yaml").write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_protocol(str(tmp_path / f"{name}.yaml"))


def test_select_keeps_the_named_runs_in_the_protocols_order(tmp_path):
    cpu = load_protocol("cpu")
    part = select(cpu, seeds=[2, 1], methods=["pal", "semprior"], datasets=["nudt"])
    assert part.seeds == [1, 2] and list(part.methods) == ["pal", "semprior"] and list(part.datasets) == ["nudt"]
    assert part.methods["pal"] == cpu.methods["pal"] and part.overrides == cpu.overrides
    assert list(select(cpu, methods=["lesps"]).datasets) == ["nuaa", "nudt"] and select(cpu).seeds == [0, 1, 2]
    with pytest.raises(ConfigError, match="method 'lesp' is not one of"):
        select(cpu, methods=["lesp"])
    with pytest.raises(ConfigError, match="seed 7"):
        select(cpu, seeds=[7])


def test_reproduce_with_two_workers_trains_and_evaluates_every_run(tiny_synthetic, tmp_path):
    import json

    import yaml

    from workbench import reproduce

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "data": {"crop": 32, "batch_size": 4, "val_fraction": 0.25},
        "model": {"options": {"widths": [4, 8, 16]}},
        "train": {"epochs": 1, "threads": 1},
        "vfm": {"name": "contrast", "layers": [1]},
        "scam": {"stages": [1], "vfm_layers": [1]},
    }))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "base": "base.yaml", "seeds": [0, 1],
        "datasets": {"tiny": {"root": str(tiny_synthetic), "name": "tiny"}},
        "methods": {"lesps": ["labels.rule=lesps"], "semprior": ["method.name=semprior"]},
    }))
    protocol = reproduce.load_protocol(str(tmp_path / "p.yaml"))
    jobs = reproduce.run(protocol, tmp_path / "out", tmp_path, progress=False, jobs=2)
    assert len(jobs) == 4
    for job in jobs:
        evals = [json.loads(p.read_text()) for p in (job.run_dir / "eval").glob("*.json")]
        expected = {"student", "teacher"} if "semprior" in job.run_dir.parts else {"student"}
        assert {e["model"] for e in evals if e["split"] == "test"} == expected
        assert (job.run_dir / "best.pt").exists()

    # A fresh clone of results/ holds the runs without checkpoints: finished ones stand on their records,
    # one that lost an evaluation is trained again from scratch, its old records replaced, not appended to.
    for job in jobs:
        for ckpt in job.run_dir.glob("*.pt"):
            ckpt.unlink()
    kept, redone = jobs[0].run_dir, jobs[1].run_dir
    kept_metrics = (kept / "metrics.jsonl").read_text()
    (kept / "metrics.jsonl").write_text(kept_metrics)  # a new mtime: a rewrite would be visible below
    stamp = (kept / "metrics.jsonl").stat().st_mtime_ns
    for p in (redone / "eval").glob("test_*"):
        p.unlink()
    reproduce.run(protocol, tmp_path / "out", tmp_path, progress=False, jobs=1)
    assert (kept / "metrics.jsonl").stat().st_mtime_ns == stamp and not (kept / "best.pt").exists()
    assert (redone / "best.pt").exists() and len((redone / "metrics.jsonl").read_text().splitlines()) == 1
    assert all(not j.run_dir.joinpath("best.pt").exists() for j in jobs[2:])


def test_gpu_protocol_plans_dnanet_and_acm_students(tmp_path):
    import shutil
    from pathlib import Path

    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "configs" / "base_cpu.yaml", root / "configs" / "base_cpu.yaml")
    (root.parent / "shared" / "data" / "NUAA-SIRST").mkdir(parents=True)
    pairs = plan(load_protocol("gpu"), tmp_path / "out", root)  # validates every override on the way
    backbones = {j.run_dir.parts[-3]: b.model.backbone for j, b in pairs}
    assert {m for m, bb in backbones.items() if bb == "acm"} == {"full-acm", "fixed-acm", "lesps-acm", "pal-acm",
                                                                 "semprior-acm"}
    assert {m for m, bb in backbones.items() if bb == "dnanet"} == {"full", "fixed", "lesps", "pal", "semprior"}
    # NUAA alone and the union (only NUAA present here): 10 methods × 3 seeds each, ablations on NUAA for both students
    assert len(pairs) == 30 + 30 + 2 * 4 * 3


def test_status_says_where_each_run_stands_without_training(tiny_synthetic, tmp_path):
    import json

    import yaml

    from semprior_core.store.run_dir import RunDir
    from workbench import reproduce
    from workbench.cli import main

    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"train": {"epochs": 3}}))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "base": "base.yaml", "seeds": [0, 1, 2], "datasets": {"tiny": {"root": str(tiny_synthetic), "name": "tiny"}},
        "methods": {"lesps": ["labels.rule=lesps"], "fixed": ["labels.rule=fixed"]},
    }))
    protocol, out = reproduce.load_protocol(str(tmp_path / "p.yaml")), tmp_path / "out"

    def record(seed: int, epochs: int, evaluated: bool) -> None:
        files = RunDir(out / "tiny" / "lesps" / "full" / f"seed{seed}")
        files.root.mkdir(parents=True)
        files.config.write_text("{}\n")
        files.metrics.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, epochs + 1)))
        files.info.write_text(json.dumps({"eval_models": ["student"]}))
        if evaluated:
            files.evaluation("test", "student", "best").parent.mkdir()
            files.evaluation("test", "student", "best").write_text("{}")

    record(0, 3, True)
    record(1, 3, False)
    record(2, 1, False)
    rows = {r["run"]: r for r in reproduce.progress_rows(protocol, out, tmp_path)}
    assert {k: r["state"] for k, r in rows.items() if "lesps" in k} == {
        "tiny/lesps/full/seed0": "finished", "tiny/lesps/full/seed1": "trained", "tiny/lesps/full/seed2": "epoch 1/3"}
    assert rows["tiny/lesps/full/seed2"]["left"] == pytest.approx(2 / 3)
    assert {r["state"] for k, r in rows.items() if "fixed" in k} == {"not started"}
    assert main(["reproduce", str(tmp_path / "p.yaml"), "--root", str(tmp_path), "--out", str(out), "--status"]) == 0
    assert not (out / "tiny" / "fixed").exists()  # --status trains nothing
