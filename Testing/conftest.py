"""Shared fixtures: phantom cases generated once per test session."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from SpineLocalizerLib.phantom.generate import generate_case
from SpineLocalizerLib.phantom.params import sample_params

# Exported network graphs go to a folder of this test run, never into the user's ~/.cache (networks/onnx_cache.py);
# subprocesses started by the tests inherit it.
os.environ.setdefault("SPINE_PLANNER_CACHE", tempfile.mkdtemp(prefix="spineplanner-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


class PhantomCache:
    def __init__(self, root: Path):
        self.root = root
        self._cases: dict[tuple, tuple[Path, dict]] = {}

    def get(self, seed: int, *, highres: bool = False, stacks: bool = False, **overrides) -> tuple[Path, dict]:
        key = (seed, highres, stacks, tuple(sorted(overrides.items())))
        if key not in self._cases:
            folder = self.root / f"case{len(self._cases)}"
            generate_case(sample_params(seed, **overrides), folder, highres=highres, stacks=stacks, overview=False)
            self._cases[key] = (folder, json.loads((folder / "truth.json").read_text()))
        return self._cases[key]


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> PhantomCache:
    return PhantomCache(tmp_path_factory.mktemp("phantoms"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.exists():
        pytest.skip(f"real validation data not found at {SHARED_REAL} (it lives in ../shared beside the repository)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def cli_plan(phantoms, tmp_path_factory) -> tuple[Path, dict]:
    """`spine-localizer plan --discs` run once on a five-lumbar phantom: (output folder, plan.json)."""
    from SpineLocalizerLib.cli import main as localizer_main

    folder, truth = phantoms.get(32, lumbar_count=5)
    out = tmp_path_factory.mktemp("cli_plan")
    args = [
        "plan",
        str(folder / truth["files"]["localizer"]),
        "--discs",
        str(folder / truth["files"]["disc_labels"]),
        "--out",
        str(out),
    ]
    assert localizer_main(args) == 0
    return out, json.loads((out / "plan.json").read_text())


@pytest.fixture(autouse=True)
def _locale_restored():
    """GDCM's DICOM writer (used by tests that make DICOM series) sets the C locale process-wide; later text I/O
    of the test process would then be ASCII-only. Each test starts and ends with the locale it was given."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)
