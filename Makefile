# The README's two commands: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean browser wheel-smoke

# The web app's browser test drives Debian's chromium (Playwright uses it; no browser download).
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/solarjax demo --outdir demo_out

test: $(STAMP) browser
	$(PY) -m pytest -q

browser:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium) ; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

# The wheel installed into a fresh venv outside the checkout, run from outside it (.ci/wheel_smoke.sh; ~30 s).
# SOLARJAX_SMOKE_DEMO=<demo output> also checks that the installed `solarjax serve` answers.
wheel-smoke: $(STAMP)
	PY=$(PY) .ci/wheel_smoke.sh

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf demo_out .pytest_cache
