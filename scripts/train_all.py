"""Train every shipped network with the shipped recipe (SpineLocalizerLib/resources/training_recipe.json).

    python scripts/train_all.py OUT [--cache DIR]        # `make train` runs this with OUT=models

OUT/phantom receives the phantom-trained weights, cards, logs and resumable checkpoints (re-running continues
where it stopped); OUT/final the weights to ship (copy them to SpineLocalizer/Resources/Models or pass `--models OUT/final`).
Stage times are appended to OUT/train_all.log. The real fine-tune needs ../shared/data/real; without it, it is
skipped and OUT/final holds the phantom-only classifier (the log says so).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_DIR = REPO.parent / "shared" / "data" / "real"
SHIPPED = ("discs", "localize", "levels", "discs_fine")


def recipe() -> dict:
    return json.loads(resources.files("SpineLocalizerLib").joinpath("resources/training_recipe.json").read_text())


def structures_command(stage: dict, out: Path, partial: Path | None = None) -> list[str]:
    """The axial structure network's runs (networks/train_structures.py; its slab cache in .cache/slabs), with the
    real images' partial-mask list where the stage has one."""
    cmd = [sys.executable, "-m", "SpineLocalizerLib.networks.train_structures", "--cache", str(REPO / ".cache/slabs")]
    if partial is not None:
        cmd += ["--partial", str(partial)]
    cmd += ["--steps", str(stage["steps"]), "--seed", str(stage["seed"]), "--out", str(out / stage["out"])]
    if "init_from" in stage:
        cmd += ["--init", str(out / stage["init_from"] / "structures.safetensors")]
    for key, value in stage.get("options", {}).items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def stage_command(
    stage: dict, out: Path, cache: Path, user_data: Path | None, partial: Path | None = None
) -> list[str]:
    if stage.get("trainer") == "structures":
        return structures_command(stage, out, partial)
    cmd = [str(Path(sys.executable).with_name("spine-localizer")), "train", "--stage", stage["stage"]]
    cmd += ["--steps", str(stage["steps"]), "--seed", str(stage["seed"]), "--cache", str(cache)]
    cmd += ["--out", str(out / stage["out"])]
    if "init_from" in stage:
        cmd += ["--init-from", str(out / stage["init_from"])]
    if user_data is not None:
        cmd += ["--user-data", str(user_data)]
    for key, value in stage.get("options", {}).items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cache", type=Path, default=Path(".cache/phantoms"), help="phantom label-map cache")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_all.log"
    start = time.time()

    def stamp(msg: str) -> None:
        line = f"[{time.time() - start:.0f} s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    final = args.out / "final"
    shipped_structures = None  # the last structure run that ran is the one shipped
    for stage in recipe()["stages"]:
        user_data = partial = None
        if "partial_masks" in stage:
            if not (REAL_DIR / stage["partial_masks"]).exists():
                stamp(f"{stage['name']}: skipped, {REAL_DIR / stage['partial_masks']} not found")
                continue
            partial = args.out / "partial_masks.json"
            subprocess.run([sys.executable, str(REPO / "scripts" / "real_partial_masks.py"), str(partial)], check=True)
        if "user_data" in stage:
            if not (REAL_DIR / stage["user_data"]).exists():
                stamp(f"{stage['name']}: skipped, {REAL_DIR / stage['user_data']} not found")
                continue
            user_data = args.out / f"real_{stage['user_data']}"
            subprocess.run(
                [sys.executable, str(REPO / "scripts" / "real_user_data.py"), stage["user_data"], str(user_data)],
                check=True,
            )
        if stage["out"] == "final" and not final.exists():
            _copy_weights(args.out / "phantom", final)
        stamp(f"{stage['name']}: {stage['steps']} steps, seed {stage['seed']}")
        subprocess.run(stage_command(stage, args.out, args.cache, user_data, partial), check=True)
        if stage.get("trainer") == "structures":
            shipped_structures = stage
    if not final.exists():
        _copy_weights(args.out / "phantom", final)
    if shipped_structures is not None:
        for ext in (".safetensors", ".json"):
            shutil.copy2(args.out / shipped_structures["out"] / f"structures{ext}", final / f"structures{ext}")
    stamp(f"done: weights in {final}")
    return 0


def _copy_weights(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        for ext in (".safetensors", ".json"):
            shutil.copy2(src / f"{name}{ext}", dst / f"{name}{ext}")


if __name__ == "__main__":
    sys.exit(main())
