"""Background training for notebooks: start, stop and resume a run in a subprocess, poll its progress.

The run is an ordinary ``semprior train`` process writing an ordinary run directory, so everything the
inspection views show works on it while it trains. Stopping sends SIGINT: the trainer keeps the last
complete checkpoint (``last.pt``, written atomically each epoch) and ``resume`` continues from it with the
run's own saved config (plus overrides, e.g. more epochs). The process's output goes to ``<run>/live.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from semprior_core.config import load_config
from semprior_core.store.run_dir import RunDir
from semprior_core.store.runs import Run

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"
LOG_NAME = "live.log"
State = Literal["new", "running", "stopped", "finished", "failed"]


@dataclass(frozen=True)
class LiveStatus:
    """A snapshot of a run: ``state``, epochs done of ``epochs`` planned, the process's return code (None
    while running or never started here), the metrics history and the last lines of the log."""

    state: State
    epoch: int
    epochs: int | None
    returncode: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""

    @property
    def progress(self) -> float:
        return self.epoch / self.epochs if self.epochs else 0.0


class LiveTraining:
    """One run directory trained in a background process.

    ``config`` (a YAML file; default: the demo recipe) and ``overrides`` (``section.key=value``) define a
    new run; ``resume`` always uses the run's saved ``config.yaml``.
    """

    def __init__(self, run_dir: str | Path, config: str | Path | None = None, overrides: list[str] | tuple = ()):
        self.run_dir = Path(run_dir)
        self.config = Path(config) if config is not None else DEMO_CONFIG
        self.overrides = _check_overrides(overrides)
        self._proc: subprocess.Popen | None = None
        self._stopping = False
        self._epochs: int | None = None  # train.epochs given at the last launch (config.yaml keeps the first)

    # -- control ---------------------------------------------------------------------------------
    def start(self, overrides: list[str] | tuple | None = None) -> LiveStatus:
        """Train a new run into ``run_dir`` with ``config`` plus ``overrides`` (default: those given at
        construction); refused if the directory already holds a run (use :meth:`resume`)."""
        self._check_idle()
        if RunDir(self.run_dir).last.exists():
            raise RuntimeError(f"{self.run_dir}: already holds a run; resume it or choose another directory")
        chosen = self.overrides if overrides is None else _check_overrides(overrides)
        return self._launch(["--config", str(self.config)], chosen)

    def resume(self, overrides: list[str] | tuple = ()) -> LiveStatus:
        """Continue the run from ``last.pt`` with its saved config plus ``overrides`` (e.g. ``train.epochs=40``)."""
        self._check_idle()
        if not RunDir(self.run_dir).last.exists():
            raise RuntimeError(f"{self.run_dir}: nothing to resume (no last.pt)")
        return self._launch(["--resume", "--config", str(RunDir(self.run_dir).config)], _check_overrides(overrides))

    def stop(self, timeout: float = 60.0) -> LiveStatus:
        """Interrupt the process (SIGINT; the last complete checkpoint stays), waiting up to ``timeout`` s
        before killing it."""
        if self.running:
            self._stopping = True
            if os.name == "nt":  # no SIGINT to another process on Windows
                self._proc.terminate()
            else:
                self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self.poll()

    def wait(self, timeout: float | None = None) -> LiveStatus:
        """Block until the process ends (or ``timeout`` s pass)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.poll()

    def wait_for_epoch(self, epoch: int, timeout: float = 120.0, interval: float = 0.2) -> LiveStatus:
        """Block until ``epoch`` epochs are recorded, the process ends, or ``timeout`` s pass."""
        end = time.monotonic() + timeout
        while True:
            status = self.poll()
            if status.epoch >= epoch or status.state != "running" or time.monotonic() > end:
                return status
            time.sleep(interval)

    # -- observation -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def poll(self) -> LiveStatus:
        history = Run(self.run_dir).history()  # checked records: a damaged one is a DataError naming the file
        epoch = int(history[-1]["epoch"]) if history else 0
        epochs = self._planned_epochs()
        rc = self._proc.poll() if self._proc is not None else None
        if self._proc is not None and rc is None:
            state: State = "running"
        elif rc not in (None, 0) and not self._stopping:
            state = "failed"
        elif rc == 0 or (epochs is not None and epoch >= epochs):
            state = "finished"
        elif RunDir(self.run_dir).last.exists() or self._stopping:
            state = "stopped"
        else:
            state = "new"
        return LiveStatus(state, epoch, epochs, rc, history, self._log_tail())

    def _planned_epochs(self) -> int | None:
        if self._epochs is not None:
            return self._epochs
        f = RunDir(self.run_dir).config
        if not f.exists():
            return None
        return load_config(f).train.epochs  # checked: a damaged config is one ConfigError naming it

    def _log_tail(self, lines: int = 20) -> str:
        f = self.run_dir / LOG_NAME
        return "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) if f.exists() else ""

    # -- process ---------------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.run_dir}: training is already running (pid {self._proc.pid})")

    def _launch(self, args: list[str], overrides: list[str]) -> LiveStatus:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        epochs = [o.split("=", 1)[1] for o in overrides if o.startswith("train.epochs=")]
        self._epochs = int(epochs[-1]) if epochs else None
        cmd = [sys.executable, "-c", _TRAINER, "train", "--out", str(self.run_dir), "--quiet", *args,
               *(f"--{o}" for o in overrides)]
        with open(self.run_dir / LOG_NAME, "ab") as log:
            # A session of its own: an interrupt of the notebook's kernel does not reach the trainer.
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=os.name != "nt")
        self._stopping = False
        return self.poll()


# A kernel started in the background by a shell without job control ignores SIGINT, and a child inherits
# that, so stop() would go unheard: the trainer restores Python's KeyboardInterrupt handler first.
_TRAINER = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from workbench.cli import main; sys.exit(main(sys.argv[1:]))")


def _check_overrides(overrides: list[str] | tuple) -> list[str]:
    out = [o.removeprefix("--") for o in overrides]
    bad = [o for o in out if "=" not in o or "." not in o.split("=", 1)[0]]
    if bad:
        raise ValueError(f"overrides look like section.key=value, got {bad}")
    return out


_SESSIONS: dict[Path, LiveTraining] = {}


def session(run_dir: str | Path, config: str | Path | None = None, overrides: list[str] | tuple = ()) -> LiveTraining:
    """The one :class:`LiveTraining` of ``run_dir`` in this process, so that re-running a notebook cell
    finds the process it started (``config`` and ``overrides`` apply when it is first created)."""
    key = Path(run_dir).resolve()
    if key not in _SESSIONS:
        _SESSIONS[key] = LiveTraining(key, config, overrides)
    return _SESSIONS[key]
