#!/usr/bin/env bash
# Train every shipped network from scratch, one run per stage, and time the whole (the issue's 2 h budget).
#
#   bash Testing/bench/train_all.sh OUT [CACHE]
#
# OUT receives the weights, cards, logs and resumable checkpoints (re-running continues where it stopped);
# CACHE is the phantom label-map cache (built once, ~2 min). The last step fine-tunes the level classifier on
# real fold A (../shared/data/real, 30 % of its samples), as the shipped one is; without the real data it is
# skipped and OUT holds the phantom-only classifier. Training seeds 11-15 and 26; phantoms 1-160; no evaluation seed.
set -euo pipefail
out=${1:?usage: train_all.sh OUT [CACHE]}
cache=${2:-.cache/phantoms}
bin=$(dirname "$0")/../../.venv/bin
mkdir -p "$out"
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$out/train_all.log" >&2; }
stamp "discs"
"$bin/spine-localizer" train --stage discs --steps 7000 --seed 11 --width 16 --targets hard --cache "$cache" --out "$out/phantom"
stamp "localize"
"$bin/spine-localizer" train --stage localize --steps 2400 --seed 12 --cache "$cache" --out "$out/phantom"
stamp "levels"
"$bin/spine-localizer" train --stage levels --steps 2200 --seed 13 --cache "$cache" --out "$out/phantom"
# The output disc network (1 mm maps) starts from the disc network above; it builds the 1 mm label cache first.
stamp "discs_fine"
"$bin/spine-localizer" train --stage discs_fine --steps 1500 --seed 26 --cache "$cache" --out "$out/phantom" \
    --init-from "$out/phantom"
mkdir -p "$out/final"
cp "$out"/phantom/{discs,localize,levels,discs_fine}.{safetensors,json} "$out/final/"
if [ -d "$(dirname "$0")/../../../shared/data/real/vertebrae_t2" ]; then
    stamp "levels fine-tune on real fold A"
    "$bin/python" "$(dirname "$0")/real_user_data.py" A "$out/real_A"
    "$bin/spine-localizer" train --stage levels --steps 600 --seed 15 --cache "$cache" --out "$out/final" \
        --init-from "$out/phantom" --user-data "$out/real_A" --user-share 0.3
fi
stamp "done: weights in $out/final"
