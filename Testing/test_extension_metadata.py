"""The extension's metadata passes what the Slicer Extensions Index checks on a submission (its
scripts/check_description_files.py: catalog entry, category, repository name, CMake project and URLs, licence),
here without a network: a URL must name a file of this repository in the repository the catalog entry names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "Resources" / "ExtensionsIndex" / "SpinePlanner.json"
SCHEMA = (
    "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.0.json#"
)
# Categories the index accepts that fit this extension (from its ACCEPTED_EXTENSION_CATEGORIES; "Spine" is not one).
FITTING_ACCEPTED_CATEGORIES = {"Planning", "Quantification", "Segmentation", "IGT", "Training"}


def _cmake_set(name: str) -> str:
    text = (REPO / "CMakeLists.txt").read_text()
    match = re.search(rf'set\s*\({name}\s*"([^"]*)"\s*\)', text)
    assert match, f"{name} is not set in CMakeLists.txt"
    return match.group(1)


def _entry() -> dict:
    return json.loads(ENTRY.read_text())


def test_the_catalog_entry_names_the_schema_a_known_category_and_a_slicer_repository():
    entry = _entry()
    assert entry["$schema"] == SCHEMA
    assert entry["category"] in FITTING_ACCEPTED_CATEGORIES
    assert entry["category"] == _cmake_set("EXTENSION_CATEGORY")
    url = urlsplit(entry["scm_url"])
    assert url.scheme in ("https", "git")
    repo_name = Path(url.path).stem
    assert "slicer" in repo_name.lower(), f"the index wants 'Slicer' in the repository name, not {repo_name!r}"
    assert entry["build_dependencies"] == _cmake_set("EXTENSION_DEPENDS").split()
    assert entry["scm_revision"] and entry["build_subdirectory"] == "."


def test_the_cmake_project_is_the_entry_s_name_and_the_licence_is_at_the_root():
    project = re.search(r"project\s*\(\s*([^\s)]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert project == ENTRY.stem
    assert (REPO / "LICENSE").is_file()
    homepage = urlsplit(_cmake_set("EXTENSION_HOMEPAGE"))
    assert homepage.path.rstrip("/") == urlsplit(_entry()["scm_url"]).path.removesuffix(".git")


def test_icon_and_screenshots_are_png_files_of_this_repository():
    owner_repo = urlsplit(_entry()["scm_url"]).path.removesuffix(".git").strip("/")
    urls = [_cmake_set("EXTENSION_ICONURL"), *_cmake_set("EXTENSION_SCREENSHOTURLS").split()]
    assert len(urls) >= 2, "the index refuses an empty screenshot list"
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc == "raw.githubusercontent.com", url
        path = parts.path.strip("/")
        assert path.startswith(owner_repo + "/main/"), f"{url} is not in {owner_repo}"
        local = REPO / path.removeprefix(owner_repo + "/main/")
        assert local.is_file(), f"{url}: {local} is not in the repository"
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{local} is not a PNG"
