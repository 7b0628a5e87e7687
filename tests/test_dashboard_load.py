"""Load: the dashboard stays responsive with 20 runs loaded and 10 concurrent sessions on loopback.

Bounded: 10 client threads × 3 page loads each against 127.0.0.1 only; response times are printed
(run pytest with -s to see them) and every request must succeed within the bound.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
import urllib.request

import pytest

from tests.fixtures_runs import tiny_run  # noqa: F401
from workbench.dashboard import serve

SESSIONS, LOADS, BOUND_S = 10, 3, 60.0


@pytest.mark.slow  # ~1 min: building 20 runs' sessions 30 times
def test_twenty_runs_ten_sessions(tiny_run, tmp_path):  # noqa: F811
    runs = tmp_path / "runs"
    for i in range(20):
        shutil.copytree(tiny_run, runs / f"run{i:02d}", ignore=shutil.ignore_patterns("last.pt"))
    server = serve([runs], host="127.0.0.1", port=0)
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(LOADS):
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(server.url, timeout=BOUND_S) as resp:
                    body = resp.read()
                    ok = resp.status == 200 and b"bokeh" in body.lower()
            except OSError as exc:
                ok, body = False, str(exc).encode()
            with lock:
                times.append(time.perf_counter() - t0)
                if not ok:
                    errors.append(body[:200].decode(errors="replace"))

    try:
        threads = [threading.Thread(target=client) for _ in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SESSIONS * LOADS * BOUND_S)
    finally:
        server.stop()
    print(f"\ndashboard load: {len(times)} page loads, 20 runs, {SESSIONS} concurrent sessions: "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    assert not errors, errors[:3]
    assert len(times) == SESSIONS * LOADS and max(times) < BOUND_S
