# Every target creates (or reuses) the virtual environment it needs. The environment lives outside the
# checkout, keyed by a hash of pyproject.toml, so that fresh clones skip the multi-GB torch install.
SHELL := /bin/bash
PYTHON ?= python3
VENV_ROOT ?= $(HOME)/.cache/reidkit/venvs
VENV := $(VENV_ROOT)/$(shell sha256sum pyproject.toml | cut -c1-16)
PY := $(VENV)/bin/python
# torch / torchvision first, pinned to the builds that the project's machines hold on disk; override on others.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DATA_DIR ?= data
SHARED ?= ../shared
PYTEST_ARGS ?=
# NO_BROWSER=1: leave out the web page's browser tests (pytest marker `browser`) instead of installing Chromium.
NO_BROWSER ?=

.PHONY: venv browser rtsp demo demo-video test wheel-test bench clean-venv

# The hash in the path already tracks pyproject.toml, so the stamp needs no prerequisite (a fresh clone's newer
# mtime must not rebuild a finished environment). A half-built one, without its stamp, is started afresh.
$(VENV)/.ready:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e '.[test,openvino,onnx,milvus,ray,mot]'
	# TrackEval (HOTA) without its declared dependencies: they would replace opencv-python-headless by the full
	# opencv-python; its metrics need only NumPy and SciPy (README, "Dependencies").
	$(PY) -m pip install --no-deps 'trackeval==1.3.0'
	touch $@

# The environment may be shared by several clones: point its editable install at this one.
venv: $(VENV)/.ready
	@$(PY) -c "import pathlib, reidkit, sys; sys.exit(pathlib.Path(reidkit.__file__).resolve().is_relative_to(pathlib.Path('src').resolve()) is False)" 2>/dev/null \
		|| $(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

demo: venv
	$(VENV)/bin/reidkit demo --shared $(SHARED) --data-dir $(DATA_DIR) --out runs/demo

demo-video: venv
	$(VENV)/bin/reidkit demo-video --shared $(SHARED) --data-dir $(DATA_DIR) --out runs/demo-video

# The browser tests drive Debian's Chromium: installed here when missing (root or passwordless sudo), else one line
# says how. REIDKIT_REQUIRE_BROWSER makes a missing browser a failure there, never a silent skip.
browser:
ifeq ($(NO_BROWSER),)
	@.ci/install-chromium
else
	@echo "NO_BROWSER=$(NO_BROWSER): the browser tests (tests/test_service_web.py, marker browser) are left out"
endif

# The live-ingest tests stream the shared video from Debian's GStreamer RTSP server on loopback: installed here
# when missing (.ci/install-rtsp). REIDKIT_REQUIRE_RTSP makes a missing server a failure, never a silent skip.
rtsp:
	@.ci/install-rtsp

# Two xdist workers with one math thread each: on two cores this beats one worker whose OpenMP threads fight.
# The wheel test (a fresh venv that trains the demo) runs after the rest, alone: it builds a venv and trains, and
# beside the other tests it only competed with them for the two cores.
test: venv browser rtsp
	OMP_NUM_THREADS=1 $(if $(NO_BROWSER),,REIDKIT_REQUIRE_BROWSER=1) REIDKIT_REQUIRE_RTSP=1 $(PY) -m pytest -n 2 \
		--ignore=tests/test_packaging.py $(if $(NO_BROWSER),-m "not browser") $(PYTEST_ARGS)
	$(MAKE) --no-print-directory wheel-test

# The wheel in a fresh virtual environment, run from outside the checkout (tests/test_packaging.py).
wheel-test: venv
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_packaging.py $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/bench_evaluation.py
	$(PY) benchmarks/bench_cli_eval.py
	$(PY) benchmarks/bench_rerank.py --scale cuhk03
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_ingest_front.py
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_search_scale.py --sizes 100000
	$(PY) benchmarks/bench_service_load.py

clean-venv:
	rm -rf $(VENV)
