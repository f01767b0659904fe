"""The bad-input matrix: every input a hostile or hurried user can easily give, run through the command it
would be given to, with the same checks each time: the exit status, one line that says what is wrong (argparse's
usage block where the arguments themselves are wrong), no traceback, the output folder byte for byte as it was
(it holds an earlier run), no staging litter beside it, and every input file untouched.

Cases covered elsewhere in more depth (truncated and NaN NIfTI, broken plans, DICOM series, flipped images, the
kill test) are in Testing/test_bad_input.py and Testing/test_output_folder.py; each case here names the defect
of the hostile test it answers (issue "No data loss, no tracebacks, bad input refused") where it has one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from SpineLocalizerLib.cli import main as localizer_main
from SpineMeasureLib.cli import main as measure_main


@dataclass
class World:
    """The files a case is built from: a phantom localizer, its disc labels, a plan of it in `out` (the folder
    every refused run must leave as it was), and a scratch folder for the bad inputs."""

    image: Path
    labels: Path
    out: Path
    plan: Path
    tmp: Path

    def volume(self, name: str, array: np.ndarray, spacing=(1.5, 1.5, 4.0), vector: bool = False) -> str:
        image = sitk.GetImageFromArray(array, isVector=vector)
        image.SetSpacing(spacing[: image.GetDimension()])
        path = self.tmp / name
        sitk.WriteImage(image, str(path), True)
        return str(path)

    def like_labels(self, name: str, array: np.ndarray) -> str:
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(sitk.ReadImage(str(self.labels)))
        path = self.tmp / name
        sitk.WriteImage(image, str(path), True)
        return str(path)

    def labels_array(self) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(self.labels)))

    def text(self, name: str, content: str) -> str:
        path = self.tmp / name
        path.write_text(content)
        return str(path)


@pytest.fixture(scope="module")
def world(phantoms, tmp_path_factory) -> World:
    folder, truth = phantoms.get(32, lumbar_count=5)
    root = tmp_path_factory.mktemp("matrix")
    image, labels = folder / truth["files"]["localizer"], folder / truth["files"]["disc_labels"]
    out = root / "plan"
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(out)]) == 0
    (root / "scratch").mkdir()
    return World(image, labels, out, out / "plan.json", root / "scratch")


def _random(shape, seed=0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(dtype)


def _plan(w: World, image: str, *extra: str) -> int:
    return localizer_main(["plan", image, *extra, "--out", str(w.out)])


def _with_labels(w: World, labels: str, *extra: str) -> int:
    return localizer_main(["plan", str(w.image), "--discs", labels, *extra, "--out", str(w.out)])


def _measure(w: World, *args: str) -> int:
    return measure_main([*args, "--out", str(w.out)])


def _train(w: World, *args: str) -> int:
    return localizer_main(["train", *args, "--out", str(w.tmp / "training"), "--cache", str(w.tmp / "cache")])


def _edited_plan(w: World, edit: Callable[[dict], None]) -> str:
    plan = json.loads(w.plan.read_text())
    edit(plan)
    return w.text(f"plan_{edit.__name__}.json", json.dumps(plan))


def _scaled_normals(plan: dict) -> None:
    for disc in plan["discs"]:
        disc["normal_lps"] = [5 * v for v in disc["normal_lps"]]


def _moved_far(plan: dict) -> None:
    for disc in plan["discs"]:
        disc["scan_center_lps"] = [v + 400.0 for v in disc["scan_center_lps"]]


def _no_disc_group(plan: dict) -> None:
    plan["discs"] = []


def _no_space(monkeypatch) -> None:
    """The disk fills up while the plan is written."""
    from SpineLocalizerLib.planning import writer

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_json", full)


# (case, what the hostile test found, run, expected exit statuses, a fragment of the message)
CASES: list[tuple[str, str, Callable[[World], int], tuple[int, ...], str]] = [
    ("unreadable file", "", lambda w: _plan(w, w.text("text.nii.gz", "hello")), (1,), "damaged"),
    ("missing file", "", lambda w: _plan(w, str(w.tmp / "nope.nii.gz")), (1,), "no such file"),
    ("2D image", "", lambda w: _plan(w, w.volume("flat.nii.gz", _random((100, 120)))), (1,), "2D"),
    (
        "4D image",
        "",
        lambda w: _plan(w, _four_d(w)),
        (1,),
        "3D",
    ),
    (
        "complex image",
        "15",
        lambda w: _plan(w, w.volume("complex.nii.gz", _random((40, 100, 120)) + 1j * _random((40, 100, 120), 1))),
        (1,),
        "complex",
    ),
    (
        "colour image",
        "",
        lambda w: _plan(w, w.volume("rgb.nii.gz", _random((40, 100, 120, 3), dtype=np.uint8), vector=True)),
        (1,),
        "components",
    ),
    (
        "spacing 0.01 mm",
        "",
        lambda w: _plan(w, w.volume("tiny.nii.gz", _random((40, 100, 120)), (0.01, 0.01, 0.01))),
        (1,),
        "spacing",
    ),
    (
        "spacing 15 mm",
        "18",
        lambda w: _plan(w, w.volume("coarse.nii.gz", _random((20, 20, 20)), (15.0, 15.0, 15.0))),
        (1,),
        "spacing",
    ),
    (
        "constant image",
        "18",
        lambda w: _plan(w, w.volume("constant.nii.gz", np.full((40, 120, 100), 7, np.int16))),
        (1,),
        "no anatomy",
    ),
    (
        "noise, no spine",
        "",
        lambda w: _plan(w, w.volume("noise.nii.gz", _random((160, 200, 30)), (4.0, 1.5, 1.5))),
        (1,),
        "no confident plan",
    ),
    ("protocol not JSON", "15", lambda w: _plan(w, str(w.image), "--protocol", w.text("p.json", "{no")), (2,), "JSON"),
    (
        "protocol of the wrong shape",
        "15",
        lambda w: _plan(w, str(w.image), "--protocol", w.text("p2.json", '{"axial": 3}')),
        (2,),
        "axial",
    ),
    (
        "protocol with text for numbers",
        "15",
        lambda w: _plan(w, str(w.image), "--protocol", _protocol_with(w, lambda p: p["axial"].update(fov_mm=["a", 1]))),
        (2,),
        "numbers",
    ),
    ("--out naming a file", "15", lambda w: localizer_main(["plan", str(w.image), "--out", str(w.image)]), (1, 2), ""),
    (
        "labels with fractions",
        "",
        lambda w: _with_labels(w, w.like_labels("frac.nii.gz", w.labels_array().astype(np.float32) + 0.5)),
        (1,),
        "whole numbers",
    ),
    (
        "labels of unknown codes",
        "16",
        lambda w: _with_labels(w, w.like_labels("big.nii.gz", w.labels_array().astype(np.int32) * 1000)),
        (1,),
        "no disc labels",
    ),
    (
        "labels on another grid",
        "",
        lambda w: _with_labels(w, w.volume("grid.nii.gz", w.labels_array()[:, ::2].copy())),
        (1,),
        "different grids",
    ),
    (
        "empty label map",
        "",
        lambda w: _with_labels(w, w.like_labels("empty.nii.gz", np.zeros_like(w.labels_array()))),
        (1,),
        "empty",
    ),
    ("lumbar count 9", "", lambda w: _plan(w, str(w.image), "--lumbar-count", "9"), (2,), "--lumbar-count"),
    ("--jobs 0", "", lambda w: _plan(w, str(w.image), "--jobs", "0"), (2,), "--jobs"),
    ("disk full while writing", "15", None, (2,), "No space left"),  # run with _no_space (below)
    (
        "reslice: plan with normals x5",
        "10",
        lambda w: localizer_main(
            ["reslice", str(w.image), "--plan", _edited_plan(w, _scaled_normals), "--out", str(w.out)]
        ),
        (2,),
        "unit",
    ),
    (
        "reslice: plan of another case",
        "10",
        lambda w: localizer_main(["reslice", str(w.image), "--plan", _edited_plan(w, _moved_far), "--out", str(w.out)]),
        (2,),
        "mm",
    ),
    (
        "reslice: plan without slice groups",
        "3",
        lambda w: localizer_main(
            ["reslice", str(w.image), "--plan", _edited_plan(w, _no_disc_group), "--out", str(w.out)]
        ),
        (2,),
        "no slice groups",
    ),
    (
        "scene: --out a folder",
        "",
        lambda w: localizer_main(["scene", "--image", str(w.image), "--plan", str(w.plan), "--out", str(w.out)]),
        (2,),
        ".mrb",
    ),
    (
        "measure: labels with fractions",
        "",
        lambda w: _measure(w, str(w.image), "--labels", w.like_labels("f2.nii.gz", w.labels_array() + 0.5)),
        (2,),
        "whole numbers",
    ),
    ("measure: unknown level", "", lambda w: _measure(w, str(w.image), "--level", "L9-L10"), (2,), "not a disc level"),
    (
        "measure: landmarks not JSON",
        "15",
        lambda w: _measure(w, "--landmarks", w.text("lm.json", "[1,2")),
        (2,),
        "JSON",
    ),
    (
        "measure: landmarks of the wrong shape",
        "15",
        lambda w: _measure(w, "--landmarks", w.text("lm2.json", '{"points": "x"}')),
        (2,),
        "levels",
    ),
    (
        "agreement: not a measurements table",
        "",
        lambda w: _measure(w, "agreement", w.text("a.csv", "x,y\n1,2\n"), w.text("b.csv", "x,y\n1,2\n")),
        (2,),
        "not a measurements.csv",
    ),
    (
        "agreement: missing table",
        "",
        lambda w: _measure(w, "agreement", str(w.tmp / "none.csv"), w.text("c.csv", "x\n")),
        (2,),
        "no such file",
    ),
    ("train: steps -3", "14", lambda w: _train(w, "--stage", "discs", "--steps", "-3"), (2,), "--steps"),
    ("train: learning rate 0", "14", lambda w: _train(w, "--stage", "discs", "--lr", "0"), (2,), "--lr"),
    ("train: threads 0", "14", lambda w: _train(w, "--stage", "discs", "--threads", "0"), (2,), "--threads"),
    ("train: user share 3", "14", lambda w: _train(w, "--stage", "discs", "--user-share", "3"), (2,), "--user-share"),
    ("train: unknown stage", "15", lambda w: _train(w, "--stage", "nope"), (2,), "--stage"),
    (
        "train: user data folder missing",
        "14",
        lambda w: _train(w, "--stage", "discs", "--user-data", str(w.tmp / "none")),
        (2,),
        "pairs",
    ),
    (
        "train: no weights to fine-tune from",
        "14",
        lambda w: _train(w, "--stage", "discs_fine", "--init-from", str(w.tmp / "none")),
        (2,),
        "not found",
    ),
]


def _four_d(w: World) -> str:
    frames = [sitk.GetImageFromArray(_random((40, 100, 120), k)) for k in range(2)]
    path = w.tmp / "four_d.nii.gz"
    sitk.WriteImage(sitk.JoinSeries(frames), str(path), True)
    return str(path)


def _protocol_with(w: World, edit: Callable[[dict], None]) -> str:
    from SpineLocalizerLib.planning.protocol import default_protocol

    protocol = default_protocol()
    edit(protocol)
    return w.text("edited_protocol.json", json.dumps(protocol))


def _digests(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case, defect, run, codes, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_loses_nothing(
    world, capsys, monkeypatch, case, defect, run, codes, expect
):
    before_out = _snapshot(world.out)
    inputs = [world.image, world.labels, world.plan, *sorted(world.tmp.glob("*"))]
    if run is None:  # the disk-full case: a plan from the labels whose writing fails
        _no_space(monkeypatch)

        def run(w):
            return _with_labels(w, str(w.labels))

    before_inputs = _digests(inputs)
    try:
        code = run(world)
    except SystemExit as stop:  # argparse refuses its own arguments this way
        code = stop.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code in codes, f"{case}: exit {code}\n{err}"
    assert "Traceback" not in err, err
    if lines and lines[0].startswith("usage:"):  # argparse: its usage block, then one line with the error
        lines = [ln for ln in lines if ": error:" in ln]
    assert len(lines) == 1, f"{case}: {len(lines)} lines\n{err}"
    assert expect.lower() in lines[0].lower(), f"{case}: {lines[0]}"
    assert _snapshot(world.out) == before_out, f"{case}: the output folder changed"
    assert not list(world.out.parent.glob(f".{world.out.name}.*")), f"{case}: staging left beside the output"
    assert _digests(inputs) == before_inputs, f"{case}: an input changed"
    assert not (world.tmp / "training").exists() or not list((world.tmp / "training").glob("*.safetensors")), case
