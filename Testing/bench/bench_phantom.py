"""Benchmark: phantom generation time on this machine (run with `make bench`, never as a test)."""

from __future__ import annotations

import statistics
import tempfile
import time

from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params


def timed(seed: int, **kwargs) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate_case(sample_params(seed, **kwargs.pop("overrides", {})), tmp, **kwargs)
        return time.perf_counter() - t


def main() -> None:
    seeds = (101, 102, 103)
    rows = [
        ("localizer case (3D localizer + labels + truth)", dict(highres=False, stacks=False, overview=False)),
        ("multi-slice stacks added", dict(highres=False, stacks=True, overview=False)),
        ("full case, high-res 0.8 mm", dict(highres=True, stacks=True, overview=True)),
        (
            "full case, high-res 0.5 mm",
            dict(highres=True, stacks=False, overview=False, overrides={"highres_spacing_mm": 0.5}),
        ),
    ]
    print("| what | median s | runs |")
    print("| --- | --- | --- |")
    for name, kwargs in rows:
        times = [timed(s, **dict(kwargs)) for s in seeds]
        print(f"| {name} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |", flush=True)


if __name__ == "__main__":
    main()
