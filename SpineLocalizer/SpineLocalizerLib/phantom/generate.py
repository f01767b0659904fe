"""Write one phantom case: images, label maps and truth.json, all or nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..labels import all_labels, is_disc_code, is_vertebra_code
from ..output_folder import output_folder
from ..volume_io import Volume, write_volume
from .anatomy import build_anatomy
from .imaging import Grid, highres_grid, localizer_grid, stack_grids, synthesize
from .params import PhantomParams
from .truth import anatomy_truth

TRUTH_SCHEMA_VERSION = 1
STACK_SUBSAMPLES = 5


def _volume(array: np.ndarray, grid: Grid) -> Volume:
    return Volume(array, grid.spacing, grid.origin, grid.direction)


def disc_only(labels: np.ndarray) -> np.ndarray:
    out = np.where(np.vectorize(is_disc_code, otypes=[bool])(np.arange(256))[labels], labels, 0)
    return out.astype(np.uint8)


def spine_mask(labels: np.ndarray) -> np.ndarray:
    """Vertebral bodies and discs: the target of the spine-localization stage."""
    lut = np.array([is_disc_code(v) or is_vertebra_code(v) for v in range(256)])
    return lut[labels].astype(np.uint8)


# What the Slicer modules' sample case loads: (node name, file role in truth["files"], label map?). SpineMeasure
# needs the diagnostic volume's full label map (every structure): the disc labels the planner reads give it the
# disc heights alone.
SAMPLE_VOLUMES = (
    ("Phantom localizer", "localizer", False),
    ("Phantom localizer discs", "disc_labels", True),
    ("Phantom diagnostic volume", "highres", False),
    ("Phantom diagnostic labels", "highres_labels", True),
)


def generate_case(
    params: PhantomParams, out_dir: str | Path, *, highres: bool = True, stacks: bool = True, overview: bool = True
) -> dict:
    """Generate the phantom for `params` into `out_dir`; return the truth dictionary that was written."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    anatomy = build_anatomy(params)
    timings["anatomy"] = time.perf_counter() - t0
    files: dict[str, str] = {}
    with output_folder(out_dir, command="phantom") as stage:
        t = time.perf_counter()
        grid = localizer_grid(anatomy)
        image, labels = synthesize(anatomy, grid)
        write_volume(_volume(image, grid), stage / "localizer.nii.gz")
        write_volume(_volume(labels, grid), stage / "localizer_labels.nii.gz")
        write_volume(_volume(disc_only(labels), grid), stage / "disc_labels.nii.gz")
        write_volume(_volume(spine_mask(labels), grid), stage / "spine_labels.nii.gz")
        files.update(
            localizer="localizer.nii.gz",
            localizer_labels="localizer_labels.nii.gz",
            disc_labels="disc_labels.nii.gz",
            spine_labels="spine_labels.nii.gz",
        )
        timings["localizer"] = time.perf_counter() - t
        if stacks:
            t = time.perf_counter()
            for k, (role, sgrid) in enumerate(stack_grids(anatomy).items()):
                s_image, s_labels = synthesize(anatomy, sgrid, subsamples=STACK_SUBSAMPLES, seed_offset=k + 1)
                write_volume(_volume(s_image, sgrid), stage / f"{role}.nii.gz")
                write_volume(_volume(s_labels, sgrid), stage / f"{role}_labels.nii.gz")
                files[role] = f"{role}.nii.gz"
                files[f"{role}_labels"] = f"{role}_labels.nii.gz"
            timings["stacks"] = time.perf_counter() - t
        if highres:
            t = time.perf_counter()
            hgrid = highres_grid(anatomy)
            h_image, h_labels = synthesize(anatomy, hgrid, seed_offset=9)
            write_volume(_volume(h_image, hgrid), stage / "highres.nii.gz")
            write_volume(_volume(h_labels, hgrid), stage / "highres_labels.nii.gz")
            files.update(highres="highres.nii.gz", highres_labels="highres_labels.nii.gz")
            timings["highres"] = time.perf_counter() - t
        t = time.perf_counter()
        truth = anatomy_truth(anatomy)
        timings["truth"] = time.perf_counter() - t
        truth = {
            "schema_version": TRUTH_SCHEMA_VERSION,
            "coordinate_system": "LPS",
            "units": {"length": "mm", "area": "mm2", "angle": "deg"},
            "files": files,
            "labels": all_labels(params.lumbar_count),
            **truth,
            "parameters": params.to_json(),
        }
        (stage / "truth.json").write_text(json.dumps(truth, indent=1))
        if overview:
            from .overview import phantom_overview  # matplotlib only when a picture is wanted

            t = time.perf_counter()
            phantom_overview(stage, truth, stage / "overview.png")
            timings["overview"] = time.perf_counter() - t
    truth["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return truth
