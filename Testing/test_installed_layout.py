"""The extension as `make install` lays it out (the files the CMake lists name, beside each other in Slicer's
qt-scripted-modules folder) finds its weights and plans from there, in an interpreter that can import only what
Slicer's Python has and what the module installs itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from test_module_files import MODULES, REPO, _cmake_list

# Only what 3D Slicer's Python bundles for the planning (numpy, scipy, SimpleITK, Pillow), PyTorch (Slicer's PyTorch
# extension) and what the module pip-installs itself (SpineLocalizerLib/dependencies.py), with everything those
# depend on; any other package of this venv (matplotlib, threadpoolctl, pytest, ...) fails to import as it would
# inside Slicer. (vtk is Slicer's too, but the PyPI wheel's requirements would let matplotlib in; planning needs
# no vtk.)
SLICER_ONLY = """
import importlib.abc, importlib.machinery, importlib.metadata as md, re, sys
GIVEN = ["numpy", "scipy", "SimpleITK", "pillow", "torch", "safetensors", "onnxruntime", "onnx"]
def norm(name):
    return name.lower().replace("_", "-")
seen, todo = set(), list(GIVEN)
while todo:
    name = norm(todo.pop())
    if name in seen:
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    seen.add(name)
    todo += [re.split(r"[ ;<>=!~\\[(]", r, maxsplit=1)[0] for r in (dist.requires or []) if "extra ==" not in r]
allowed = {top for top, dists in md.packages_distributions().items() if any(norm(d) in seen for d in dists)}
allowed |= {"SpineLocalizerLib", "SpineMeasureLib"}
BLOCKED = []
class NotInSlicer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if path is not None or top in allowed or top in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name)
        # The standard library is Slicer's too; what lies in site-packages must be one of the allowed.
        if spec is not None and "site-packages" in str(spec.origin or spec.submodule_search_locations):
            BLOCKED.append(top)
            raise ModuleNotFoundError(f"No module named {top!r} (not in Slicer's Python)", name=top)
        return None
sys.meta_path.insert(0, NotInSlicer())
"""

PLAN_FROM_INSTALLED = (
    SLICER_ONLY
    + """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import SpineLocalizerLib
from SpineLocalizerLib.networks import MODEL_DIR
from SpineLocalizerLib.networks.infer import discs_on
from SpineLocalizerLib.pipeline import plan_from_localizer
from SpineLocalizerLib.planning.writer import write_plan_outputs
from SpineLocalizerLib.volume_io import read_volume
image = read_volume(sys.argv[2])
plan, result = plan_from_localizer([image])
discs = discs_on(result, image)
with tempfile.TemporaryDirectory() as out:
    written = write_plan_outputs(Path(out), plan, image)
print(json.dumps({"package": SpineLocalizerLib.__file__, "models": str(MODEL_DIR), "written": written,
                  "discs": [d["label"] for d in plan["discs"]], "disc_voxels": int((discs > 0).sum()),
                  "blocked": sorted(set(BLOCKED))}))
"""
)


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
    assert out["disc_voxels"] > 1000 and "overview.png" in out["written"]


def test_the_slicer_only_interpreter_refuses_what_slicer_lacks():
    """The check above can fail: matplotlib and threadpoolctl are installed here but refused in that
    interpreter, while torch and safetensors import."""
    probe = (
        SLICER_ONLY
        + """
import torch, safetensors
for name in ("matplotlib", "threadpoolctl"):
    try:
        __import__(name)
    except ImportError:
        print("refused", name)
"""
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused matplotlib" in done.stdout and "refused threadpoolctl" in done.stdout
