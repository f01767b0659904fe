"""Static checks of the Slicer modules: CMake lists every file, the code only uses widgets the .ui defines."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = ("SpineLocalizer", "SpineMeasure")


def _cmake_list(text: str, var: str) -> set[str]:
    block = re.search(rf"set\({var}\n(.*?)\n\s*\)", text, re.S)
    assert block, f"{var} not found"
    return {line.strip() for line in block.group(1).splitlines() if line.strip()}


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_python_file_and_resource(module):
    root = REPO / module
    text = (root / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", module)
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    on_disk = {
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "Testing" not in p.parts and "__pycache__" not in p.parts
    }
    assert on_disk == scripts, f"missing from CMake: {on_disk - scripts}; listed but absent: {scripts - on_disk}"
    res_disk = {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".png", ".ui", ".json", ".safetensors") and "Testing" not in p.parts
    }
    assert res_disk == resources, (
        f"missing from CMake: {res_disk - resources}; listed but absent: {resources - res_disk}"
    )


@pytest.mark.parametrize("module", MODULES)
def test_widget_names_used_by_the_module_exist_in_its_ui(module):
    code = (REPO / module / f"{module}.py").read_text()
    ui = (REPO / module / "Resources" / "UI" / f"{module}.ui").read_text()
    defined = set(re.findall(r'name="([A-Za-z0-9_]+)"', ui))
    used = set(re.findall(r"self\.ui\.([A-Za-z0-9_]+)", code))
    assert used <= defined, f"widgets used but not in the .ui: {used - defined}"
    params = set(re.findall(r'SlicerParameterName" stdset="0">\s*<string>([A-Za-z0-9_]+)<', ui))
    for name in params:
        assert re.search(rf"^\s+{name}\s*:", code, re.M), f"{name} bound in the .ui but not in the parameter node"


def test_module_files_stay_thin():
    for module in MODULES:
        lines = (REPO / module / f"{module}.py").read_text().count("\n")
        assert lines < 400, f"{module}.py has {lines} lines; move logic into {module}Lib"


def test_pure_core_never_imports_slicer_vtk_or_qt():
    pattern = re.compile(r"^\s*(import|from)\s+(slicer|vtk|qt|ctk)\b", re.M)
    for lib in ("SpineLocalizer/SpineLocalizerLib", "SpineMeasure/SpineMeasureLib"):
        for path in (REPO / lib).rglob("*.py"):
            if "scene" in path.relative_to(REPO / lib).parts[:-1]:
                continue  # scene/ is the MRML logic layer: the one place allowed to know slicer and vtk
            assert not path.name.startswith("scene"), f"{path}: MRML logic belongs in the Lib's scene/ package"
            assert not pattern.search(path.read_text()), f"{path} imports Slicer/VTK/Qt"
