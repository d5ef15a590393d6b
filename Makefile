# The README's two commands: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint parity beam-venv test-beam bench clean browser wheel-smoke

# The web app's browser test drives Debian's chromium (Playwright uses it; no browser download).
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/solarjax demo --outdir demo_out

# Two worker processes (pytest-xdist), each test module whole on one of them: XLA's compiler runs on one core.
# In conftest.py's module order (the quick demo's first user first), not xdist's largest-module-first order,
# so the second worker runs the modules without the demo while the first builds it.
TEST_WORKERS ?= 2
test: $(STAMP) browser lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# ruff (configured in pyproject.toml): lint, and the formatting checked (`ruff format .` applies it).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The PyTorch parity tests (the reference implementations run in torch on CPU) in their own venv, so the
# main one stays torch-free; not part of `make test`, where they skip. Here a missing torch fails them.
PARITY_VENV ?= .venv-parity
PARITY_STAMP := $(PARITY_VENV)/.installed
$(PARITY_STAMP): pyproject.toml
	test -x $(PARITY_VENV)/bin/python || $(PYTHON) -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/python -m pip install -e '.[test]' torch==2.13.0
	touch $(PARITY_STAMP)

parity: $(PARITY_STAMP)
	SOLARJAX_REQUIRE_TORCH=1 $(PARITY_VENV)/bin/python -m pytest -q -m parity

browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium) ; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

# The wheel installed into a fresh venv outside the checkout, run from outside it (.ci/wheel_smoke.sh; ~30 s).
# SOLARJAX_SMOKE_DEMO=<demo output> also checks that the installed `solarjax serve` answers.
wheel-smoke: $(STAMP)
	PY=$(PY) .ci/wheel_smoke.sh

# Apache Beam builds (`solarjax data build --beam-runner ...`): apache-beam caps protobuf, pyarrow, pillow and
# python-dateutil below the project venv's versions, so it gets a venv of its own (the project and the `beam` extra).
BEAM_VENV ?= .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed
$(BEAM_STAMP): pyproject.toml
	test -x $(BEAM_VENV)/bin/python || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install -e '.[beam]' 'pytest>=8'
	touch $(BEAM_STAMP)

beam-venv: $(BEAM_STAMP)

# The Beam builds against the plain builds on the real frames (data_builders/beam_build_test.py); .ci/run runs it.
test-beam: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python -m pytest -q data_builders/beam_build_test.py

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf demo_out .pytest_cache
