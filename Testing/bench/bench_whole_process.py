"""Latency a user waits for: `spine-localizer plan LOCALIZER --out DIR` as a whole process (interpreter start,
imports, loading and checking the weights, the networks, planning, writing every output), and
`spine-measure SLICE_GROUP --out DIR` from the image alone (structure network). Median and spread of REPEATS runs
each, with each run's peak resident memory (the child's ru_maxrss), on the `make demo` phantom (seed 7). The plan
is timed twice: as on every call after the first (the exported network graphs in the cache, networks/onnx_cache.py)
and as on the very first call (an empty cache each run).

    .venv/bin/python Testing/bench/bench_whole_process.py [REPEATS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], cache: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one run of `cmd` as its own process, its graph cache in `cache`."""
    env = dict(os.environ)
    if cache is not None:
        env["SPINE_PLANNER_CACHE"] = str(cache)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024.0


def _report(name: str, runs: list[tuple[float, float]]) -> None:
    walls = [w for w, _ in runs]
    print(
        f"{name}: median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}, "
        f"{len(walls)} runs), peak memory median {statistics.median(m for _, m in runs):.0f} MB"
    )


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / "case"
        subprocess.run([str(BIN / "spine-phantom"), "--seed", "7", "--out", str(case)], check=True, capture_output=True)
        plan = [str(BIN / "spine-localizer"), "plan", str(case / "localizer.nii.gz")]
        cache = Path(tmp) / "cache"
        _timed([*plan, "--out", str(Path(tmp) / "warm")], cache)  # file and graph caches warm, as on a second call
        _report(
            "spine-localizer plan (whole process)",
            [_timed([*plan, "--out", str(Path(tmp) / f"p{i}")], cache) for i in range(repeats)],
        )
        _report(
            "spine-localizer plan (whole process, first call: empty graph cache)",
            [_timed([*plan, "--out", str(Path(tmp) / f"c{i}")], Path(tmp) / f"cold{i}") for i in range(repeats)],
        )
        reslice = [str(BIN / "spine-localizer"), "reslice", str(case / "highres.nii.gz")]
        subprocess.run(
            [*reslice, "--plan", str(Path(tmp) / "p0" / "plan.json"), "--out", str(Path(tmp) / "axial")],
            check=True,
            capture_output=True,
        )
        group = str(Path(tmp) / "axial" / "L4-L5_axial.nii.gz")
        measure = [str(BIN / "spine-measure"), group]
        _report(
            "spine-measure L4-L5 slice group from the image (whole process)",
            [_timed([*measure, "--out", str(Path(tmp) / f"m{i}")]) for i in range(repeats)],
        )


if __name__ == "__main__":
    main()
