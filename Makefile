# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv demo test test-slicer-pythons slow bench evaluate train lint clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spine-phantom --seed 7 --out out/phantom
	$(VENV)/bin/spine-localizer plan out/phantom/localizer.nii.gz --out out/plan
	$(VENV)/bin/spine-localizer plan out/phantom/localizer.nii.gz --discs out/phantom/disc_labels.nii.gz --out out/plan_from_labels
	$(VENV)/bin/spine-localizer reslice out/phantom/highres.nii.gz --plan out/plan/plan.json \
		--labels out/phantom/highres_labels.nii.gz --out out/axial
	$(VENV)/bin/spine-measure out/phantom/highres.nii.gz --labels out/phantom/highres_labels.nii.gz \
		--reference-plan out/plan/plan.json --out out/measurements
	$(VENV)/bin/spine-localizer scene --image out/phantom/localizer.nii.gz --plan out/plan/plan.json \
		--discs out/plan/discs.nii.gz --measurements out/measurements/measurements.json \
		--out out/demo.mrb --screenshot out/plan_3d.png
	@echo "Demo written under out/ (see README): phantom/, plan/, plan_from_labels/, axial/, measurements/,"
	@echo "demo.mrb (open in 3D Slicer) and plan_3d.png."

# The suite, then the pure core's quick subset under the Pythons Slicer 5.8 and 5.10 ship (their own venvs).
test: $(STAMP)
	$(PY) -m pytest -q
	scripts/test_slicer_pythons.sh quick

test-slicer-pythons:
	scripts/test_slicer_pythons.sh all

slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m pip install --quiet --no-deps -r requirements-bench.txt
	$(PY) Testing/bench/bench_pipeline.py
	$(PY) Testing/bench/bench_whole_process.py
	$(PY) Testing/bench/bench_phantom.py

evaluate: $(STAMP)
	$(PY) Testing/bench/evaluate_planning.py 60
	$(PY) Testing/bench/evaluate_pipeline.py phantoms 100
	$(PY) Testing/bench/evaluate_pipeline.py real
	$(PY) Testing/bench/evaluate_measurements.py 30 0.8
	$(PY) Testing/bench/evaluate_measurements.py 30 0.5

# The shipped recipe (SpineLocalizerLib/resources/training_recipe.json), about two hours on two cores; weights in
# models/final (docs/training.md).
train: $(STAMP)
	$(PY) scripts/train_all.py models --cache .cache/phantoms

# The pure core (no Slicer, no torch): planning, phantom, measurement, geometry, labels, volume I/O, labeling.
MYPY_CORE = -p SpineLocalizerLib.planning -p SpineLocalizerLib.phantom -p SpineMeasureLib \
	-m SpineLocalizerLib.geometry -m SpineLocalizerLib.labels -m SpineLocalizerLib.volume_io -m SpineLocalizerLib.output_folder \
	-m SpineLocalizerLib.input_checks -m SpineLocalizerLib.plan_file -m SpineLocalizerLib.json_files -m SpineLocalizerLib.progress -m SpineLocalizerLib.sample_data \
	-m SpineLocalizerLib.nifti_check -m SpineLocalizerLib.dicom_series \
	-m SpineLocalizerLib.networks.labeling -m SpineLocalizerLib.networks.sequence_matching \
	-m SpineLocalizerLib.networks.heatmap_levels -m SpineLocalizerLib.networks.canonical

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=SpineLocalizer:SpineMeasure $(VENV)/bin/mypy --exclude '/scene/' $(MYPY_CORE)

clean:
	rm -rf out .pytest_cache
