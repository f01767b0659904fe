"""The sample case of the Sample Data module: a phantom generated on the user's machine (seed `SAMPLE_SEED`), so
nothing is downloaded. The Slicer module registers it with a loader that generates and loads it; what it registers
is defined here, where a test can check it against the files the extension installs."""

from __future__ import annotations

import os

CATEGORY = "Spine"
SAMPLE_NAME = "SpinePhantomLocalizer"
SAMPLE_SEED = 7  # the `make demo` phantom: the README's figures are of this case
THUMBNAIL = ("Resources", "Icons", "SpinePhantomLocalizer.png")  # inside the SpineLocalizer module folder


def sample_data_arguments(module_dir: str) -> dict:
    """Keyword arguments of SampleData.SampleDataLogic.registerCustomSampleDataSource (Slicer 5.8 and 5.10),
    the loader (`customDownloader`) aside."""
    return {
        "category": CATEGORY,
        "sampleName": SAMPLE_NAME,
        "thumbnailFileName": os.path.join(module_dir, *THUMBNAIL),
    }
