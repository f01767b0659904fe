"""Latency of the whole localizer pipeline (load excluded, planning included; and, apart, with the disc and spine
label maps drawn on the input's grid as `spine-localizer plan` writes them) on 2 threads, with the shipped
runtime (V-Nets in bf16 where the CPU has it natively, the classifier in ONNX Runtime), all-fp32 ONNX Runtime and
the TorchScript fallback, and in the same run one forward pass of MONAI's VNet on the same input as a reference.
Peak memory is the process's maximum resident set size.

    .venv/bin/python Testing/bench/bench_pipeline.py
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from SpineLocalizerLib.networks.infer import discs_on, prepare_input, run_pipeline, spine_on
from SpineLocalizerLib.networks.models import load_model
from SpineLocalizerLib.networks.runtime import RUNTIME_ENV
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params
from SpineLocalizerLib.planning.plan import build_plan
from SpineLocalizerLib.volume_io import read_volume

REPEATS = 7


def pipeline_once(image) -> tuple[float, float]:
    """(seconds to the plan, seconds to the plan and the label maps on the input's grid)."""
    t = time.perf_counter()
    result = run_pipeline([image])
    build_plan(  # exactly as `spine-localizer plan` does it
        result.grid.as_volume(result.discs_canonical),
        lumbar_count=result.lumbar_count,
        confidences=result.confidences,
        probability=result.disc_probability,
    )
    planned = time.perf_counter() - t - result.timings_s["load_models"]
    discs_on(result, image)
    spine_on(result, image)
    return planned, time.perf_counter() - t - result.timings_s["load_models"]


def monai_once(net, x) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        net(x)
    return time.perf_counter() - t


def ours_in_child(paths: dict[str, str], runtime: str) -> tuple[dict[str, float], float]:
    """Median latency per input and the peak resident memory of a process that only runs our pipeline."""
    os.environ[RUNTIME_ENV] = runtime
    torch.set_num_threads(2)
    load_model("localize")  # warm the file cache; loading is excluded from the timings
    times = {}
    for name, path in paths.items():
        image = read_volume(Path(path))
        pipeline_once(image)
        runs = [pipeline_once(image) for _ in range(REPEATS)]
        times[name] = tuple(statistics.median(r[k] for r in runs) for k in (0, 1))
    return times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import multiprocessing

    torch.set_num_threads(2)
    from monai.networks.nets import VNet as MonaiVNet

    with tempfile.TemporaryDirectory() as tmp:
        truth = generate_case(sample_params(100_500), Path(tmp), highres=False, stacks=True, overview=False)
        paths = {
            "3D localizer (2 mm)": str(Path(tmp) / truth["files"]["localizer"]),
            "sagittal multi-slice localizer (11 x 5 mm)": str(Path(tmp) / truth["files"]["sagittal_stack"]),
        }
        # Our pipeline runs alone in a fresh process, so its peak memory is its own (not the phantom's or MONAI's).
        # The shipped path, all-fp32 ONNX Runtime and the TorchScript fallback, each in its own fresh process.
        runs = {}
        for runtime in ("", "onnxruntime", "torch"):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                runs[runtime] = pool.apply(ours_in_child, (paths, runtime))
        ours, peak_mb = runs[""]
        monai = MonaiVNet(spatial_dims=3, in_channels=1, out_channels=2).eval()  # dropout is off in eval mode
        print(
            "| input | our pipeline to the plan, median s | ... and the label maps on the input grid | "
            "MONAI VNet, one forward pass on the same 2 mm input, median s | ratio (plan; with maps) |"
        )
        print("| --- | --- | --- | --- | --- |")
        for name, path in paths.items():
            canon, _ = prepare_input([read_volume(Path(path))])
            padded = np.pad(canon, [(0, (-s) % 16) for s in canon.shape])
            x = torch.from_numpy(np.ascontiguousarray(padded[None, None]))
            monai_once(monai, x)
            ref = statistics.median(monai_once(monai, x) for _ in range(3))
            plan_s, maps_s = ours[name]
            print(
                f"| {name} | {plan_s:.3f} | {maps_s:.3f} | {ref:.3f} (input {tuple(x.shape[2:])}) | "
                f"{plan_s / ref:.2f}; {maps_s / ref:.2f} |"
            )
    print(f"peak resident memory of a process running only our pipeline (both inputs): {peak_mb:.0f} MB")
    for runtime, label in (("onnxruntime", "ONNX Runtime, all fp32"), ("torch", "TorchScript fallback")):
        slow, slow_mb = runs[runtime]
        print(
            f"{label} ({RUNTIME_ENV}={runtime}): "
            + ", ".join(f"{name} {slow[name][0]:.3f} s ({slow[name][1]:.3f} s with the maps)" for name in paths)
            + f"; peak memory {slow_mb:.0f} MB"
        )


if __name__ == "__main__":
    main()
