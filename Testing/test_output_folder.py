"""Output folders lose nothing (SpineLocalizerLib/output_folder.py): a command deletes or replaces only files it
wrote itself, never an input, never a hand-edited file without --force, and a killed run leaves the folder as
it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from SpineLocalizerLib.cli import main as localizer_main
from SpineLocalizerLib.cli import output_subfolders
from SpineLocalizerLib.output_folder import OutputConflict, manifest_name, output_folder
from SpineMeasureLib.cli import main as measure_main


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def test_a_run_replaces_its_own_files_keeps_others_and_removes_its_stale_ones(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, command="demo") as stage:
        (stage / "a.txt").write_text("1")
        (stage / "b.txt").write_text("1")
    (out / "mine.txt").write_text("the user's")
    with output_folder(out, command="other") as stage:
        (stage / "c.txt").write_text("other command")
    with output_folder(out, command="demo") as stage:
        (stage / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "2"
    assert not (out / "b.txt").exists()  # ours, not written again: a folder never mixes two runs
    assert (out / "mine.txt").read_text() == "the user's" and (out / "c.txt").read_text() == "other command"
    assert json.loads((out / manifest_name("demo")).read_text())["files"].keys() == {"a.txt"}
    assert _litter(out) == []


def test_a_failed_run_changes_nothing_and_leaves_no_staging(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, command="demo") as stage:
        (stage / "a.txt").write_text("1")
    before = _snapshot(out)
    with pytest.raises(RuntimeError):
        with output_folder(out, command="demo") as stage:
            (stage / "a.txt").write_text("half")
            raise RuntimeError("the run failed")
    assert _snapshot(out) == before and _litter(out) == []
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "new", command="demo") as stage:
            raise RuntimeError("the first run into a new folder failed")
    assert not (tmp_path / "new").exists()


def test_a_hand_edited_file_is_neither_replaced_nor_deleted_without_force(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, command="demo") as stage:
        (stage / "L4-L5_axial.mrk.json").write_text("AI plane")
        (stage / "L5-S1_axial.mrk.json").write_text("AI plane")
    (out / "L4-L5_axial.mrk.json").write_text("dragged by the radiologist")
    before = _snapshot(out)
    for written in (["L4-L5_axial.mrk.json"], ["L5-S1_axial.mrk.json"]):  # replaced, or deleted as stale
        with pytest.raises(OutputConflict, match="L4-L5_axial.mrk.json changed since"):
            with output_folder(out, command="demo") as stage:
                for name in written:
                    (stage / name).write_text("new AI plane")
        assert _snapshot(out) == before
    with output_folder(out, command="demo", force=True) as stage:
        (stage / "L4-L5_axial.mrk.json").write_text("new AI plane")
    assert (out / "L4-L5_axial.mrk.json").read_text() == "new AI plane"


def test_an_input_or_a_file_of_someone_else_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    given = out / "discs.nii.gz"
    given.write_bytes(b"the user's label map")
    for force in (False, True):
        with pytest.raises(OutputConflict, match="would replace the input"):
            with output_folder(out, command="plan", inputs=[given], force=force) as stage:
                (stage / "discs.nii.gz").write_bytes(b"network output")
    (out / "notes.json").write_text("not ours")
    with pytest.raises(OutputConflict, match="did not write: notes.json"):
        with output_folder(out, command="plan") as stage:
            (stage / "notes.json").write_text("ours now?")
    assert given.read_bytes() == b"the user's label map" and (out / "notes.json").read_text() == "not ours"


def test_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("{}")
    with pytest.raises(OutputConflict, match="is a file, not a folder"):
        with output_folder(target, command="plan"):
            pass
    assert target.read_text() == "{}"


def test_a_swap_a_killed_run_left_half_done_is_completed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, command="demo") as stage:
        (stage / "a.txt").write_text("1")
    # Killed between the two renames of the fallback swap: the old folder aside, the new one never arrived.
    os.rename(out, tmp_path / ".out.replaced-x1")
    (tmp_path / ".out.partial-dead").mkdir()
    with output_folder(out, command="demo") as stage:
        assert (out / "a.txt").read_text() == "1"  # restored before the run writes
        (stage / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "2" and _litter(out) == []


def test_two_inputs_with_one_name_get_their_own_subfolders():
    names = output_subfolders([Path("/a/site1/loc.nii.gz"), Path("/a/site2/loc.nii.gz"), Path("/b/other.nii.gz")])
    assert names == ["site1_loc", "site2_loc", "other"]
    assert len(set(output_subfolders([Path("/x/a.nii.gz"), Path("/x/a.nii"), Path("/y/x/a.nii.gz")]))) == 3


def test_agreement_and_measurement_into_one_folder_keep_each_others_files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rows = (
        "level,measurement,value,status,method\nL4-L5,disc_height_mm,{},ok,reader\nL3-L4,disc_height_mm,{},ok,reader\n"
    )
    a.write_text(rows.format(10.0, 9.0))
    b.write_text(rows.format(10.4, 9.1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "measurements.csv").write_text("a reader's measurements")
    (out / "measurements.json").write_text("{}")
    assert measure_main(["agreement", str(a), str(b), "--out", str(out)]) == 0
    assert (out / "measurements.csv").read_text() == "a reader's measurements"
    assert (out / "measurements.json").exists() and (out / "agreement.csv").exists()
    # Its own input inside the output folder is kept too.
    inside = out / "a.csv"
    inside.write_text(a.read_text())
    assert measure_main(["agreement", str(inside), str(b), "--out", str(out)]) == 0
    assert inside.read_text() == a.read_text()


def test_plan_keeps_a_given_label_map_and_unrelated_markups(phantoms, tmp_path, capsys):
    folder, truth = phantoms.get(32, lumbar_count=5)
    out = tmp_path / "out"
    out.mkdir()
    labels = out / "discs.nii.gz"
    labels.write_bytes((folder / truth["files"]["disc_labels"]).read_bytes())
    (out / "my_notes.mrk.json").write_text("{}")
    image = folder / truth["files"]["localizer"]
    # The plan from labels writes no discs.nii.gz: the given map stays, and so do the user's markups.
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(out)]) == 0
    assert labels.read_bytes() == (folder / truth["files"]["disc_labels"]).read_bytes()
    assert (out / "my_notes.mrk.json").read_text() == "{}" and (out / "plan.json").exists()
    # A hand-edited plane survives a re-run unless --force, and the message names it.
    edited = out / "L4-L5_axial.mrk.json"
    edited.write_text(edited.read_text().replace("L4-L5", "L4-L5 (edited)"))
    before = _snapshot(out)
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(out)]) == 1
    assert "L4-L5_axial.mrk.json changed since" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert localizer_main(["plan", str(image), "--discs", str(labels), "--out", str(out), "--force"]) == 0
    assert "(edited)" not in edited.read_text()


def test_reslice_with_a_plan_without_slice_groups_is_refused_and_keeps_the_volumes(phantoms, tmp_path, capsys):
    folder, truth = phantoms.get(32, lumbar_count=5)
    out = tmp_path / "axial"
    plan_dir = tmp_path / "plan"
    image = folder / truth["files"]["localizer"]
    assert (
        localizer_main(
            ["plan", str(image), "--discs", str(folder / truth["files"]["disc_labels"]), "--out", str(plan_dir)]
        )
        == 0
    )
    assert localizer_main(["reslice", str(image), "--plan", str(plan_dir / "plan.json"), "--out", str(out)]) == 0
    before = _snapshot(out)
    empty = json.loads((plan_dir / "plan.json").read_text())
    empty["discs"] = []
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    assert localizer_main(["reslice", str(image), "--plan", str(tmp_path / "empty.json"), "--out", str(out)]) == 2
    assert "no slice groups" in capsys.readouterr().err and _snapshot(out) == before


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from SpineLocalizerLib.output_folder import output_folder
out, tag = Path(sys.argv[1]), sys.argv[2]
with output_folder(out, command="demo") as stage:
    for k in range(40):
        (stage / f"part{k:02d}.txt").write_text(tag * 2000)
        time.sleep(0.01)
    (stage / "plan.json").write_text(tag)
"""


def test_concurrent_runs_into_one_folder_end_with_one_whole_run(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, str(script), str(out), tag], env=env) for tag in "WXYZ"]
    assert [p.wait() for p in procs] == [0, 0, 0, 0]
    files = _snapshot(out)
    tags = {v[:1].decode() for name, v in files.items() if not name.startswith(".")}
    assert len(tags) == 1 and len(files) == 42  # 40 parts, plan.json, the manifest
    manifest = json.loads(files[manifest_name("demo")])["files"]
    assert set(manifest) == {n for n in files if not n.startswith(".")}
    assert _litter(out) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_at_any_point_leaves_one_whole_run_in_the_folder(tmp_path, sig):
    out = tmp_path / "out"
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, str(script), str(out), "A"], check=True, env=env)
    previous, outcomes = "A", []
    for k in range(8):
        tag = "B" if k % 2 else "C"
        proc = subprocess.Popen([sys.executable, str(script), str(out), tag], env=env)
        time.sleep(0.05 + 0.08 * k)  # from the start-up through the writes to the swap and after
        proc.send_signal(sig)
        proc.wait()
        files = _snapshot(out)
        tags = {v[:1].decode() for name, v in files.items() if not name.startswith(".")}
        assert tags in ({previous}, {tag}), f"two runs mixed after kill {k}: {sorted(tags)}"
        assert len([n for n in files if n.startswith("part")]) == 40
        if proc.returncode == 0:  # a finished run is in the folder (a kill after its swap leaves it there too)
            assert tags == {tag}
        if sig == signal.SIGTERM:
            assert not any(".partial-" in n for n in _litter(out))  # cleaned up on SIGTERM
        outcomes.append(tags == {tag})
        previous = tags.pop()
    assert not all(outcomes), "every run finished before the signal: the kill points missed the run"
    # The next run removes what a SIGKILL left beside the folder.
    subprocess.run([sys.executable, str(script), str(out), "D"], check=True, env=env)
    assert _litter(out) == [] and (out / "plan.json").read_text() == "D"


def test_a_batch_resumes_where_it_stopped_and_reports_its_pace(phantoms, tmp_path, capsys):
    """`plan --resume` skips the inputs whose folder holds a whole plan from the same input and settings; a changed
    input or a damaged folder is planned again; the batch ends with its counts and cases per minute."""
    import shutil

    from SpineLocalizerLib.cli import main as localizer_main
    from SpineLocalizerLib.volume_io import read_volume, write_volume

    folder, truth = phantoms.get(32, lumbar_count=5)
    images = []
    for name in ("a", "b", "c"):
        images.append(tmp_path / f"{name}.nii.gz")
        shutil.copy(folder / truth["files"]["localizer"], images[-1])
    args = [
        "plan",
        *map(str, images),
        "--discs",
        str(folder / truth["files"]["disc_labels"]),
        "--out",
        str(tmp_path / "out"),
    ]
    assert localizer_main(args) == 0
    err = capsys.readouterr().err
    assert "3 inputs: 3 planned, 0 failed, 0 done before" in err and "per minute" in err and "s left" in err
    plans = {n: tmp_path / "out" / n / "plan.json" for n in "abc"}
    stamps = {n: p.stat().st_mtime_ns for n, p in plans.items()}
    # b's image changes (one voxel), c's folder loses a file: both are planned again, a is skipped.
    vol = read_volume(images[1])
    vol.array[0, 0, 0] += 1
    write_volume(vol, images[1])
    (tmp_path / "out" / "c" / "overview.png").unlink()
    assert localizer_main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "a.nii.gz: planned before from the same input (resume)" in err
    assert "3 inputs: 2 planned, 0 failed, 1 done before" in err
    assert plans["a"].stat().st_mtime_ns == stamps["a"]
    assert plans["b"].stat().st_mtime_ns != stamps["b"] and (tmp_path / "out" / "c" / "overview.png").exists()
    # Other settings are another plan: nothing is skipped.
    assert localizer_main([*args, "--resume", "--lumbar-count", "5"]) == 0
    assert "3 planned, 0 failed, 0 done before" in capsys.readouterr().err
