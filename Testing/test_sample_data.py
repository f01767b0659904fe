"""The Sample Data entry the module registers: arguments Slicer accepts, a thumbnail the extension installs."""

import re
from pathlib import Path

from PIL import Image
from SpineLocalizerLib import sample_data

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SpineLocalizer"
# registerCustomSampleDataSource's keyword parameters in Slicer 5.8 and 5.10 (Modules/Scripted/SampleData).
SLICER_PARAMETERS = {
    "category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader", "thumbnailFileName",
    "loadFileTypes", "loadFiles", "loadFileProperties", "checksums", "loadFileType",
}  # fmt: skip


def test_sample_entry_uses_only_slicers_arguments_and_an_installed_thumbnail():
    args = sample_data.sample_data_arguments(str(MODULE))
    assert set(args) <= SLICER_PARAMETERS
    thumbnail = Path(args["thumbnailFileName"])
    assert thumbnail.is_file() and Image.open(thumbnail).format == "PNG"
    listed = (MODULE / "CMakeLists.txt").read_text()
    assert str(thumbnail.relative_to(MODULE)) in listed


def test_module_registers_the_entry_at_startup_with_a_generating_loader():
    code = (MODULE / "SpineLocalizer.py").read_text()
    assert re.search(r'slicer\.app\.connect\("startupCompleted\(\)", registerSampleData\)', code)
    body = code[code.index("def registerSampleData") :]
    assert (
        "registerCustomSampleDataSource(" in body and "customDownloader=" in body and "loadPhantom(SAMPLE_SEED)" in body
    )
    assert "uris" not in sample_data.sample_data_arguments(str(MODULE))  # generated here: nothing to download
