"""Tuning protocols: inherited budgets, validation-only scores, winners the main protocol must use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from semprior_core.config.tree import ConfigError
from workbench import reproduce, tuning
from workbench.tuning import Candidate


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def protocols(tmp_path, tiny_synthetic):
    _write(tmp_path / "base.yaml", {
        "data": {"crop": 32, "batch_size": 4, "val_fraction": 0.25},
        "model": {"options": {"widths": [4, 8, 16]}},
        "train": {"epochs": 2, "threads": 1},
        "vfm": {"name": "contrast", "layers": [1]},
        "scam": {"stages": [1], "vfm_layers": [1]},
    })  # fmt: skip
    main = _write(tmp_path / "main.yaml", {
        "base": "base.yaml", "seeds": [0, 1], "tuned": "tuned.yaml",
        "datasets": {"tiny": {"root": str(tiny_synthetic)}, "other": {"root": str(tmp_path / "absent")}},
        "methods": {"full": ["method.supervision=full"], "lesps": ["labels.rule=lesps", "labels.update_every=1"]},
    })  # fmt: skip
    tune = _write(tmp_path / "tune.yaml", {
        "extends": "main", "seeds": [0], "datasets": ["tiny"], "methods": ["lesps"],
        "candidates": {"lesps": {"default": [], "start-late": ["labels.start_epoch_frac=0.5"]}},
    })  # fmt: skip
    return main, tune


def test_a_tuning_protocol_inherits_the_budget_and_takes_a_subset(protocols):
    main, tune = protocols
    p = reproduce.load_protocol(str(tune))
    parent = reproduce.load_protocol(str(main))
    assert p.base == parent.base and p.tuned == "tuned.yaml" and p.seeds == [0]
    assert list(p.datasets) == ["tiny"] and p.methods == {"lesps": parent.methods["lesps"]}


@pytest.mark.parametrize(
    "child, match",
    [({"extends": "main", "datasets": ["nope"]}, "datasets 'nope' is not in the protocol it extends"),
     ({"extends": "loop"}, "extend each other in a loop"),
     ({"extends": "main", "candidates": {"pal": {"a": []}}}, "candidates for 'pal', which is not one of the methods"),
     ({"extends": "main", "budget": 3}, "unknown protocol key 'budget'")],
)  # fmt: skip
def test_bad_protocols_are_refused_naming_the_problem(protocols, tmp_path, child, match):
    _write(tmp_path / "loop.yaml", {"extends": "child"})
    path = _write(tmp_path / "child.yaml", child)
    with pytest.raises(ConfigError, match=match):
        reproduce.load_protocol(str(path))


def test_the_main_protocol_refuses_to_run_untuned(protocols, tmp_path):
    main, _ = protocols
    p = reproduce.load_protocol(str(main))
    with pytest.raises(ConfigError, match="tuned.yaml does not exist; run its tuning protocol first"):
        reproduce.plan(p, tmp_path / "out", tmp_path)
    _write(tmp_path / "tuned.yaml", {"lesps": None})
    with pytest.raises(ConfigError, match="no finished candidate for 'lesps'"):
        reproduce.plan(p, tmp_path / "out", tmp_path)
    _write(tmp_path / "tuned.yaml", {"lesps": {"candidate": "x", "overrides": ["labels.start_epoch_frac=0.5"]}})
    pairs = reproduce.plan(p, tmp_path / "out", tmp_path)
    lesps = {j.run_dir.parts[-3]: b for j, b in pairs}["lesps"]
    assert lesps.labels.start_epoch_frac == 0.5 and lesps.labels.update_every == 1  # method's own, then the winner's


def _c(method, name, status="finished", score=None, late=None, keep="best"):
    return Candidate(method, name, (), Path(name), status, "point_f1", score, 1 if score is not None else None, 2,
                     late, keep)


def test_winners_are_the_best_finished_validation_score_and_ties_go_to_the_first_listed():
    rows = [_c("lesps", "default", score=0.5), _c("lesps", "b", score=0.7), _c("lesps", "c", "partial", 0.9),
            _c("lesps", "d", score=0.7), _c("pal", "default", "missing"), _c("semprior", "x", score=0.1)]
    chosen = tuning.winners(rows)
    assert chosen["lesps"].name == "b"  # 0.7 beats 0.5; the partial 0.9 does not count; d ties with b and loses
    assert "pal" not in chosen and chosen["semprior"].name == "x"


def test_a_tie_on_the_best_score_goes_to_the_steadier_run():
    rows = [_c("semprior", "incumbent", score=1.0, late=0.95), _c("semprior", "steadier", score=1.0, late=0.98),
            _c("semprior", "lower", score=0.98, late=0.99)]
    assert tuning.winners(rows)["semprior"].name == "steadier"  # the best score first, then the late mean
    assert tuning.winners([rows[0], _c("semprior", "same", score=1.0, late=0.95)])["semprior"].name == "incumbent"


def test_runs_that_keep_their_final_epoch_rank_by_the_late_mean_then_the_best_score():
    rows = [_c("pal", "incumbent", score=1.0, late=0.90, keep="last"), _c("pal", "steady", score=0.96, late=0.95,
            keep="last"), _c("pal", "peaky", score=1.0, late=0.95, keep="last")]
    assert tuning.winners(rows)["pal"].name == "peaky"  # ties with steady on the late mean, higher best score
    assert tuning.winners(rows[:2])["pal"].name == "steady"  # the late mean decides before the best score
    md = tuning.tuning_markdown(reproduce.Protocol("t", "b", [0], {"d": []}, {"pal": []}, candidates={"pal": {}}),
                                rows, tuning.winners(rows), "cmd")
    assert "keep their final epoch (`train.select=last`) rank by the mean of their last 5" in md
    assert "keep their best epoch" not in md  # only the rule these candidates follow is described


def test_the_late_mean_averages_the_last_scored_validations(tmp_path):
    import json

    from workbench.tuning import LATE, _candidate

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("{}\n")
    scores = [0.2, 0.9, float("nan"), 0.6, 0.7, 0.8, 0.9, 1.0]  # NaN: a validation that could not score
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "select_score": v}) + "\n"
                                               for e, v in enumerate(scores, 1)))
    c = _candidate("lesps", "x", [], run, planned_epochs=8, keep="best")
    assert LATE == 5 and c.score == 1.0 and c.epoch == 8 and c.status == "finished"
    assert c.late_mean == pytest.approx((0.6 + 0.7 + 0.8 + 0.9 + 1.0) / 5)


def test_tuning_trains_every_candidate_scores_on_validation_and_writes_the_winners(protocols, tmp_path):
    _, tune = protocols
    p = reproduce.load_protocol(str(tune))
    out = tmp_path / "runs"
    reproduce.run(p, out, tmp_path, progress=False)
    rows = tuning.candidates(p, out, tmp_path)
    assert [(r.method, r.name, r.status) for r in rows] == [("lesps", "default", "finished"),
                                                           ("lesps", "start-late", "finished")]
    for r in rows:
        history = [json.loads(line) for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
        best = max(h["select_score"] for h in history if "select_score" in h)
        assert r.metric == "point_f1" and r.score == pytest.approx(best)
        assert not (r.run_dir / "eval").exists()  # tuning never reads the test split
    tuned = tuning.write_tuning(p, rows, tmp_path, tmp_path / "docs" / "tuning.md", "semprior reproduce tune")
    winner = tuning.winners(rows)["lesps"]
    assert tuned["lesps"]["candidate"] == winner.name
    assert yaml.safe_load((tmp_path / "tuned.yaml").read_text()) == tuned
    md = (tmp_path / "docs" / "tuning.md").read_text()
    assert f"**{winner.name}**" in md and "`labels.start_epoch_frac=0.5`" in md and "test split was not read" in md
