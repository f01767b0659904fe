"""The extension as `make install` lays it out (the files the CMake lists name, beside each other in Slicer's
qt-scripted-modules folder) finds its weights and plans from there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from test_module_files import MODULES, REPO, _cmake_list

PLAN_FROM_INSTALLED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import SpineLocalizerLib
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.volume_io import read_volume
plan, _ = plan_from_localizer([read_volume(sys.argv[2])])
print(json.dumps({"package": SpineLocalizerLib.__file__, "models": str(MODEL_DIR),
                  "discs": [d["label"] for d in plan["discs"]]}))
"""


def install_layout(target: Path) -> None:
    """Copy each module's CMake-listed scripts and resources into `target`, as Slicer's install does."""
    for module in MODULES:
        text = (REPO / module / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", module)
        for var in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
            for rel in _cmake_list(text, var):
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / module / rel, dest)


def test_the_installed_layout_finds_its_weights_and_plans(phantoms, tmp_path):
    modules = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    install_layout(modules)
    folder, truth = phantoms.get(32, lumbar_count=5)
    done = subprocess.run(
        [sys.executable, "-c", PLAN_FROM_INSTALLED, str(modules), str(folder / truth["files"]["localizer"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["package"]).is_relative_to(modules)  # the installed copy, not the source tree
    assert Path(out["models"]) == modules / "Resources" / "Models"
    assert out["discs"][0] == "T12-L1" and out["discs"][-1] == "L5-S1"
