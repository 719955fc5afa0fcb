"""Probes that explain start latency: what a fresh runner process and an fsync cost on this machine.

A runner is a new Python process per session, so interpreter start, the runner's imports and the
interpreter's exit are all on the path from create to Completed; SQLite with synchronous=FULL pays
an fsync on every commit. Measuring them alone says how much of the end-to-end figures they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from bench.stats import Summary, summarize

RUNNER_MODULE = "vteam.runner.main"
STAMP = "import time; print(time.time(), flush=True)"


def _spawn_to_exit(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - start) * 1000


def _import_then_exit() -> tuple[float, float]:
    """(spawn → imports done, imports done → process reaped) in ms; the child stamps the middle point."""
    spawned = time.time()
    child = subprocess.Popen(
        [sys.executable, "-c", f"import {RUNNER_MODULE}; {STAMP}"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    imported = float(child.stdout.readline())
    child.wait()
    reaped = time.time()
    return (imported - spawned) * 1000, (reaped - imported) * 1000


def _fsync_once(directory: str) -> float:
    with tempfile.NamedTemporaryFile(dir=directory) as handle:
        handle.write(os.urandom(4096))
        handle.flush()
        start = time.perf_counter()
        os.fsync(handle.fileno())
        return (time.perf_counter() - start) * 1000


def process_start(repeats: int = 5, fsyncs: int = 50) -> list[Summary]:
    """Each probe once as a warm-up (page cache warm, as it is for runners), then `repeats` times."""
    _spawn_to_exit("pass")
    _import_then_exit()
    bare = [_spawn_to_exit("pass") for _ in range(repeats)]
    runner = [_import_then_exit() for _ in range(repeats)]
    directory = tempfile.gettempdir()  # the benchmark's server keeps its database here too
    return [
        summarize("probe: python -c pass (interpreter start+exit)", bare),
        summarize(f"probe: spawn → `import {RUNNER_MODULE}` done", [imp for imp, _ in runner]),
        summarize("probe: exit after those imports (→ reaped)", [ex for _, ex in runner]),
        summarize(f"probe: fsync of a 4 KiB write in {directory}", [_fsync_once(directory) for _ in range(fsyncs)]),
    ]
