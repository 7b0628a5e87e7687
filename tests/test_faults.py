"""Kill-and-resume: ``semprior train`` killed with SIGKILL at random moments — mid-epoch, mid-checkpoint,
mid-label-update — resumes from its last complete state and ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from semprior_core.checkpoint import load_checkpoint
from semprior_core.label_history import LabelHistory

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
    assert json.dumps(ha, sort_keys=True) == json.dumps(hb, sort_keys=True)
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
