"""Where the time of one `spine-localizer plan` goes: the same steps as the command, timed one by one in a fresh
process (imports, reading, loading the networks, the plan, the output maps, writing), twice: the first pass as a
user's single call, the second as the next plan of a batch.

    .venv/bin/python Testing/bench/whole_process_breakdown.py [LOCALIZER]   # default: out/phantom (make demo)
"""

from __future__ import annotations

import sys
import tempfile
import time

t0 = time.perf_counter()
from pathlib import Path  # noqa: E402

from SpineLocalizerLib.networks import MODEL_DIR  # noqa: E402
from SpineLocalizerLib.networks.infer import discs_on, spine_on  # noqa: E402
from SpineLocalizerLib.networks.loaded import loaded_networks  # noqa: E402
from SpineLocalizerLib.pipeline import plan_from_localizer  # noqa: E402
from SpineLocalizerLib.planning.writer import write_plan_outputs  # noqa: E402
from SpineLocalizerLib.volume_io import Volume, read_volume, write_volume  # noqa: E402


def main() -> None:
    steps = {"imports": time.perf_counter() - t0}
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/phantom/localizer.nii.gz")
    t = time.perf_counter()
    image = read_volume(path)
    steps["read"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded_networks(MODEL_DIR, 2, True)
    steps["load networks"] = time.perf_counter() - t
    for run in ("first plan", "second plan"):
        t = time.perf_counter()
        plan, result = plan_from_localizer([image], model_dir=MODEL_DIR, input_info={})
        steps[f"{run}: networks to the plan"] = time.perf_counter() - t
        t = time.perf_counter()
        result.maps()
        steps[f"{run}: 1 mm output maps"] = time.perf_counter() - t
        t = time.perf_counter()
        discs, spine = discs_on(result, image), spine_on(result, image)
        steps[f"{run}: maps onto the input grid"] = time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            for name, array in (("discs.nii.gz", discs), ("spine.nii.gz", spine)):
                write_volume(Volume(array, image.spacing, image.origin, image.direction), Path(out) / name)
            write_plan_outputs(Path(out), plan, image)
        steps[f"{run}: writing"] = time.perf_counter() - t
    for name, secs in steps.items():
        print(f"{name}: {secs:.2f} s")


if __name__ == "__main__":
    main()
