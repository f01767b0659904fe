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


def _internal_imports(path: Path, lib_root: Path) -> set[str]:
    """Modules of the same Lib that `path` imports (absolute or relative, at module level or inside functions)."""
    import ast

    package = path.relative_to(lib_root.parent).with_suffix("").parts
    if package[-1] == "__init__":
        package = package[:-1]
    base = package if path.name == "__init__.py" else package[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(base[: len(base) - node.level + 1]) + (node.module.split(".") if node.module else [])
                names = [".".join(parts)] if node.module else [".".join(parts + [a.name]) for a in node.names]
            else:
                names = [node.module or ""]
            out |= {n for n in names if n.split(".")[0] == lib_root.name}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == lib_root.name}
    return out


def test_no_import_cycle_between_modules():
    for lib in ("SpineLocalizer/SpineLocalizerLib", "SpineMeasure/SpineMeasureLib"):
        root = REPO / lib
        modules = {}
        for path in root.rglob("*.py"):
            rel = path.relative_to(root.parent).with_suffix("").parts
            name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
            modules[name] = _internal_imports(path, root)
        graph = {m: {d for d in deps if d in modules and d != m} for m, deps in modules.items()}
        cycle = _find_cycle(graph)
        assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return trail + [m, d]
            if d not in state and (found := visit(d, trail + [m])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [])):
            return found
    return None


def test_the_packages_installed_in_slicer_are_the_pinned_ones_and_missing_ones_are_found(monkeypatch):
    """The module installs safetensors (and offers ONNX Runtime) at the versions of requirements.txt; a package
    that cannot be imported is reported, one that can is not."""
    import importlib.util

    from SpineLocalizerLib import dependencies

    pins = {
        line.split("==")[0].strip().lower(): line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for spec in {**dependencies.REQUIRED, **dependencies.OPTIONAL}.values():
        assert pins[spec.split("==")[0]] == spec
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnx" else real(name))
    assert dependencies.missing(dependencies.REQUIRED) == []
    assert dependencies.missing(dependencies.OPTIONAL) == ["onnx==1.23.2"]
    assert "twice as fast" in dependencies.missing_message([], ["onnx==1.23.2"])
    assert dependencies.missing_message([], []) == ""
