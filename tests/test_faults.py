"""Kill-and-resume: ``semprior train`` killed with SIGKILL at random moments — mid-epoch, mid-checkpoint,
mid-label-update — resumes from its last complete state and ends exactly like an uninterrupted run; so does
one stopped by a full disk at any of its writes, which says so in one line."""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semprior_core.io import read_jsonl
from semprior_core.store.checkpoint import load_checkpoint
from semprior_core.store.label_history import LabelHistory
from tests.histories import assert_same_history

COMMON = ["--data.crop=32", "--data.batch_size=4", "--data.val_fraction=0.25", "--model.options={widths: [4, 8, 16]}",
          "--train.epochs=4", "--train.threads=1", "--labels.start_epoch_frac=0.0", "--labels.update_every=1",
          "--train.loss=focal", "--quiet"]
METHODS = {
    "full": ["--supervision", "full"],
    "lesps": ["--supervision", "lesps"],
    "pal": ["--supervision", "pal", "--labels.pal.pre_start=0.0", "--labels.pal.update_every=1"],
    "semprior": ["--method", "semprior", "--labels.rule=lesps", "--vfm.name=contrast", "--vfm.layers=[3]",
                 "--scam.stages=[0, 1]", "--scam.vfm_layers=[3, 3]", "--semprior.meta_every=1"],
}


def _cmd(data, out, extra, resume=False):
    return [sys.executable, "-m", "workbench.cli", "train", "--data", str(data), "--out", str(out), *COMMON, *extra,
            *(["--resume"] if resume else [])]


def _env():
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run_with_kills(data, out, extra, kills, rng):
    """Start, SIGKILL after a random delay, resume; repeat ``kills`` times, then run to the end.
    Returns how many kills hit a run that had a checkpoint but had not finished."""
    mid_run = 0
    for k in range(1, kills + 1):
        proc = subprocess.Popen(_cmd(data, out, extra, resume=(out / "last.pt").exists()), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Wait until the run has finished k epochs, then kill at a random moment of the next one
        # (inside training, a label update, validation or a checkpoint write).
        deadline = time.monotonic() + 300
        while proc.poll() is None and _epochs_done(out) < k and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            mid_run += (out / "last.pt").exists()
        proc.wait()
    res = subprocess.run(_cmd(data, out, extra, resume=(out / "last.pt").exists()), env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return mid_run


def _epochs_done(run) -> int:
    f = run / "metrics.jsonl"
    return len(f.read_text().splitlines()) if f.exists() else 0


def _state(run):
    ckpt = load_checkpoint(run / "last.pt")
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    weights = (run / "clusters" / "weights.jsonl").read_text() if (run / "clusters").exists() else ""
    return ckpt, hist, weights


def _check_equal(a, b):
    ca, ha, wa = _state(a)
    cb, hb, wb = _state(b)
    assert_same_history(ha, hb)
    for name, net in ca["networks"].items():
        for k, v in net.items():
            assert torch.equal(v, cb["networks"][name][k]), f"{name}.{k}"
    for la, lb in zip(ca["supervision"].get("labels", []), cb["supervision"].get("labels", [])):
        assert torch.equal(la, lb)
    assert wa == wb  # cluster-weight records (semprior)
    if ca["supervision"]:
        assert LabelHistory(a).epochs == LabelHistory(b).epochs


@pytest.mark.parametrize("method", ["lesps", pytest.param("full", marks=pytest.mark.slow),
                                    pytest.param("pal", marks=pytest.mark.slow), "semprior"])
def test_sigkill_and_resume_matches_uninterrupted(tiny_synthetic, tmp_path, method):
    ref = tmp_path / "ref"
    res = subprocess.run(_cmd(tiny_synthetic, ref, METHODS[method]), env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    killed = tmp_path / "killed"
    mid_run = _run_with_kills(tiny_synthetic, killed, METHODS[method], kills=3, rng=np.random.default_rng(7))
    assert mid_run >= 1, "no kill landed inside a running epoch loop; the test proved nothing"
    _check_equal(ref, killed)
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"


# -- a full disk ----------------------------------------------------------------------------------
DISK_ARGS = ["--supervision", "lesps", "--data.crop=32", "--data.batch_size=4", "--data.val_fraction=0.25",
             "--model.options={widths: [4, 8, 16]}", "--train.epochs=2", "--train.threads=1",
             "--labels.start_epoch_frac=0.0", "--labels.update_every=1", "--quiet"]


class DiskFullAt:
    """``os.fsync`` — every writer's last step before its file counts — failing as on a full disk at call
    ``n``; ``calls`` tells whether the run got that far."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.fsync = n, 0, os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.fsync(fd)


def _train(data, out, *extra) -> int:
    from workbench.cli import main

    return main(["train", "--data", str(data), "--out", str(out), *DISK_ARGS, *extra])


def _check_nothing_beyond_last(run) -> None:
    """A stopped run holds nothing newer than last.pt, the state its resume starts from."""
    last = load_checkpoint(run / "last.pt")["epoch"] if (run / "last.pt").exists() else 0
    if (run / "best.pt").exists():
        assert load_checkpoint(run / "best.pt")["epoch"] <= last, "best.pt is newer than last.pt"
    assert len(read_jsonl(run / "metrics.jsonl")) <= last


def _check_same_best(a, b) -> None:
    ba, bb = load_checkpoint(a / "best.pt"), load_checkpoint(b / "best.pt")
    assert (ba["epoch"], ba["best"]) == (bb["epoch"], bb["best"])
    for name, net in ba["networks"].items():
        for k, v in net.items():
            assert torch.equal(v, bb["networks"][name][k]), f"best.pt {name}.{k}"


def test_disk_full_at_any_write_gives_one_line_and_a_resumable_run(tiny_synthetic, tmp_path, monkeypatch, capsys):
    ref = tmp_path / "ref"
    assert _train(tiny_synthetic, ref) == 0
    failed = []
    for n in itertools.count(1):
        run, fault = tmp_path / f"full-at-{n}", DiskFullAt(n)
        with monkeypatch.context() as m:
            m.setattr(os, "fsync", fault)
            rc = _train(tiny_synthetic, run)
        printed = capsys.readouterr().out
        if fault.calls < n:  # every write of the run done: nothing left to fail
            assert rc == 0
            break
        assert rc == 2 and "Traceback" not in printed and printed.count("error:") == 1, printed
        line = re.search(r"error: (\S+): cannot write \(No space left on device\); (.*)", " ".join(printed.split()))
        assert line, printed
        failed.append(Path(line[1]).relative_to(run).as_posix())
        _check_nothing_beyond_last(run)
        resumable = (run / "last.pt").exists()
        assert ("continue with --resume" in line[2]) == resumable, line[0]
        assert _train(tiny_synthetic, run, *(["--resume"] if resumable else [])) == 0, capsys.readouterr().out
        _check_equal(ref, run)
        _check_same_best(ref, run)
        assert not list(run.rglob(".*.tmp")), "a temporary file was left behind"
    assert {"last.pt", "best.pt", "metrics.jsonl", "labels/update_00001.npz", "run.json"} <= set(failed)
