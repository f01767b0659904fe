#!/usr/bin/env bash
# The pure core (planning, phantom, measurement, geometry, labels, volume I/O) under the interpreters 3D Slicer
# ships: Python 3.9 with numpy 1.26 (Slicer 5.8) and Python 3.12 with numpy 2.0 (Slicer 5.10). No torch, no
# slicer-core: what fails here would fail inside Slicer's own Python.
#
#   scripts/test_slicer_pythons.sh [quick|all]
#
# quick (the default, run by `make test`): imports, geometry, label conventions and planning from label maps
# (phantoms generated, the CLI's plan written). all: every test of the pure core (~5 min per interpreter).
# Interpreters are taken from pyenv (~/.pyenv/versions/3.9.*, 3.12.*) or SLICER_PY39 / SLICER_PY312; one that is
# missing is reported and skipped, unless REQUIRE_SLICER_PYTHONS=1 (then it is an error).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK="Testing/test_geometry.py Testing/test_label_conventions.py Testing/test_planning.py"
ALL="$QUICK Testing/test_agreement.py Testing/test_measure_auto.py Testing/test_measure_landmarks.py
     Testing/test_output_folder.py Testing/test_phantom_cli.py Testing/test_phantom_params.py Testing/test_phantom_truth.py"
TESTS=$QUICK
[ "${1:-quick}" = all ] && TESTS=$ALL

find_python() {  # $1: version prefix (3.9), $2: override variable's value
    if [ -n "$2" ]; then echo "$2"; return; fi
    ls -d "$HOME"/.pyenv/versions/"$1".*/bin/python 2>/dev/null | sort -V | tail -1
}

status=0
for pair in "3.9:5.8:${SLICER_PY39:-}" "3.12:5.10:${SLICER_PY312:-}"; do
    IFS=: read -r version slicer override <<<"$pair"
    python=$(find_python "$version" "$override")
    if [ -z "$python" ] || [ ! -x "$python" ]; then
        msg="Python $version (Slicer $slicer) not found: install it with pyenv or set SLICER_PY${version/./}"
        if [ "${REQUIRE_SLICER_PYTHONS:-0}" = 1 ]; then echo "error: $msg" >&2; status=1; else echo "skipped: $msg"; fi
        continue
    fi
    venv=".venv-slicer-$slicer"
    req="requirements-slicer-$slicer.txt"
    stamp="$venv/.installed-$(cksum <"$req" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
        touch "$stamp"
    fi
    echo "== Slicer $slicer: $("$venv/bin/python" -c 'import sys, numpy; print("Python", sys.version.split()[0], "numpy", numpy.__version__)')"
    # -p no:cacheprovider: the main interpreter's pytest cache is not shared with another pytest version.
    "$venv/bin/python" -m pytest -q -p no:cacheprovider $TESTS || status=1
done
exit $status
